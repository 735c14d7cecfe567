package relay

// Security review probes of the relay. Tests named TestSecHeld… pin what
// held in the review; tests named TestSecFixed… each reproduced a weakness
// the review found, and fail if it comes back.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	lp "github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
	"github.com/pmta-agent/pmta-agent/agent/poller"
)

func (h *harness) secEvents() []agent.Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]agent.Point(nil), h.events...)
}

func (h *harness) secRaw(path string, hdr http.Header, body string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// --- Authentication -------------------------------------------------------

func TestSecHeldAuthVariants(t *testing.T) {
	h := newHarness(t, nil)
	jsonCT := "application/json"
	body := `{"command":"show status"}`
	for _, tc := range []struct {
		name string
		auth []string
		want int
	}{
		{"no header", nil, 401},
		{"empty", []string{""}, 401},
		{"Bearer only", []string{"Bearer"}, 401},
		{"Bearer space", []string{"Bearer "}, 401},
		{"Bearer spaces", []string{"Bearer      "}, 401},
		{"lower-case scheme (RFC 6750 says case-insensitive)", []string{"bearer " + opsToken}, 200},
		{"upper-case scheme", []string{"BEARER " + opsToken}, 200},
		{"Basic", []string{"Basic " + opsToken}, 401},
		{"token with trailing spaces (trimmed)", []string{"Bearer " + opsToken + "   "}, 200},
		{"token with leading tab (trimmed)", []string{"Bearer \t" + opsToken}, 200},
		{"token prefix", []string{"Bearer " + opsToken[:32]}, 401},
		{"token plus char", []string{"Bearer " + opsToken + "x"}, 401},
		{"two tokens in one header", []string{"Bearer " + opsToken + " " + amToken}, 401},
		{"invalid first, valid second header", []string{"Bearer nope", "Bearer " + opsToken}, 401},
		{"valid first, invalid second header", []string{"Bearer " + opsToken, "Bearer nope"}, 200},
		{"token name instead of token", []string{"Bearer ops"}, 401},
		{"sha256 of token (the stored form)", []string{"Bearer " + fmt.Sprintf("%x", secSHA(opsToken))}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {jsonCT}}
			if tc.auth != nil {
				hdr["Authorization"] = tc.auth
			}
			code, out := h.secRaw("/v1/command", hdr, body)
			if tc.want == 401 && code == 429 {
				code = 401 // refused too: callers without a token share one budget
			}
			if code != tc.want {
				t.Errorf("%d %s, want %d", code, out, tc.want)
			}
			if strings.Contains(out, opsToken) || strings.Contains(out, amToken) {
				t.Errorf("answer holds a token: %s", out)
			}
		})
	}
	// Huge header: Go's server answers 431 before the relay sees it.
	code, _ := h.secRaw("/v1/command", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 2<<20)}}, body)
	if code != 431 {
		t.Errorf("2 MiB Authorization: %d, want 431", code)
	}
	for _, p := range h.secEvents() {
		if s := string(agent.AppendLineProtocol(nil, &p)); strings.Contains(s, opsToken) || strings.Contains(s, amToken) {
			t.Errorf("a pmta_event holds a token: %s", s)
		}
	}
}

// FINDING: a refused token is neither rate-limited nor aggregated: every
// unauthenticated request costs a WARN log line and a pmta_event point in
// every sink (and its disk queue). Anyone who can reach the listener can
// flood the audit trail, the sinks and the InfluxDB bucket.
func TestSecFixedUnauthenticatedNotLimited(t *testing.T) {
	h := newHarness(t, nil)
	const n = 300
	for i := 0; i < n; i++ {
		code, _ := h.command(fmt.Sprintf("guess-%d-%s", i, opsToken), "show status")
		if code == 429 {
			t.Logf("limited after %d", i)
			return
		}
	}
	if ev := len(h.secEvents()); ev > 20 {
		t.Errorf("%d wrong-token requests wrote %d pmta_event points: the unauthenticated share one budget, and past it are not audited one by one", n, ev)
	}
	if len(h.rl.limit.buckets) != 0 {
		t.Errorf("buckets for invalid tokens: %d", len(h.rl.limit.buckets))
	}
}

// FINDING: the tokens are read once, at start; editing the file (to revoke
// a leaked token) changes nothing, and a reload does not read it either
// (relay.* is fixed), so revocation needs a restart.
func TestSecFixedTokenRevocationNeedsRestart(t *testing.T) {
	h := newHarness(t, nil)
	if err := os.WriteFile(h.rl.cfg.TokensFile, []byte("alertmanager "+amToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.rl.ReloadTokens(); err != nil { // what a reload (SIGHUP) does
		t.Fatal(err)
	}
	if code, _ := h.command(opsToken, "show status"); code == 200 {
		t.Errorf("the token removed from %s is still accepted after a reload", filepath.Base(h.rl.cfg.TokensFile))
	}
}

func TestSecTokensFileModes(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.WriteFile(real, []byte("ops "+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o700, 0o400} {
		os.Chmod(real, mode)
		_, err := loadTokens(real)
		if wantErr := mode&0o077 != 0; wantErr != (err != nil) {
			t.Errorf("mode %o: err %v", mode, err)
		}
	}
	os.Chmod(real, 0o600)
	// A symlink (mode 0777 itself) to a 0600 file is accepted: Stat follows it.
	link := filepath.Join(dir, "link")
	os.Symlink(real, link)
	if _, err := loadTokens(link); err != nil {
		t.Errorf("symlink to 0600: %v", err)
	} else {
		t.Log("note: a symlinked tokens file is accepted (its target's mode is checked, the owner is not)")
	}
	// A directory on the world-readable side: checked? (It is not.)
	pub := filepath.Join(dir, "pub")
	os.Mkdir(pub, 0o777)
	f := filepath.Join(pub, "tokens")
	os.WriteFile(f, []byte("ops "+opsToken+"\n"), 0o600)
	if _, err := loadTokens(f); err == nil {
		t.Log("note: a 0600 tokens file in a world-writable directory is accepted (anyone may replace it; the agent reads it only at start)")
	}
	// The error of a bad line never says the token.
	os.WriteFile(real, []byte("ops "+opsToken+" trailing\nbad\x01name "+opsToken+"x\nshort "+"abc\n"), 0o600)
	_, err := loadTokens(real)
	if err == nil || strings.Contains(err.Error(), opsToken) || strings.Contains(err.Error(), "abc") {
		t.Errorf("error %v", err)
	}
}

// --- Allow-list and validation --------------------------------------------

func TestSecHeldAllowListBypass(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Allow = []string{"pause queue", "show status"}
		c.RatePerMinute, c.Burst = 10000, 10000
		c.Alertmanager.Enabled = false
	})
	for _, line := range []string{
		"delete --queue=*/*",
		"DELETE --queue=*/*",
		"resume queue gmail.com/*",
		"schedule gmail.com/*",
		"retry queue gmail.com", // → schedule: not allowed
		"show queues",
		"show --maxitems=1 status",
		"show status --x",
		"pause -- queue gmail.com/*",
		"pause --queue gmail.com/*",
		"pause queue -- gmail.com/*",
		"pause queue gmail.com/* --",
		"pause queue gmail.com/* ; delete --queue=*/*",
		"pause queue gmail.com/*;delete",
		"pause queue gmail.com/*&&reload",
		"pause queue \"gmail.com/* x\"",
		"pause queue gmail.com/*\treload",
		"pause queue gmail.com/*\u2028reload",
		"pause queue gmail.com/*\u202ereload",
		"pause queue gmail.com/*\u200b",
		"pause queue ｇmail.com/*",         // full-width g
		"pause queue gmaіl.com/*",         // Cyrillic і
		"pause queue xn--gmal-5ve.com/*",  // punycode — valid syntax, fine
		"pause qUeUe gmail.com/*",         // case: allowed, sent as written
		"pause queue gmail.com/{default}", // allowed
		"pause queue gmail.com/$(reboot)", // refused by ValidVMTA
		"pause queue `reboot`",            // refused
		"pause queue gmail.com/" + strings.Repeat("a", 200),
		"paus\u0435 queue gmail.com/*", // Cyrillic е in verb
		"pause queue\u00a0gmail.com/*", // NBSP
	} {
		before := len(h.pmta.commands())
		code, body := h.command(opsToken, line)
		sent := h.pmta.commands()[before:]
		t.Logf("%-50q → %d %v sent=%q", line, code, body["status"], sent)
		for _, s := range sent {
			c, err := pmtacmd.Parse(s)
			if err != nil || (c.Name() != "pause queue" && c.Name() != "show status") || c.Validate() != nil {
				t.Errorf("%q sent %q", line, s)
			}
		}
	}
}

// FINDING: a quoted verb. Parse keeps blanks inside quotes, Name() reads
// the verb word as a whole, so a verb word "pause queue" makes Name() ==
// "pause queue" while the object word Args[0] is anything at all —
// Validate skips it (oneQueue(rest[1:])). What is sent is
// `"pause queue" "<anything>" gmail.com/*`: harmless only if PowerMTA
// honours the quotes exactly as Parse does. A receiver that drops quotes
// (or splits on blanks and strips them) reads a different command than the
// one the allow-list and Validate judged. Likewise "show" in the allow-list
// admits a verb word "show <anything>".
func TestSecFixedQuotedVerb(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Allow = []string{"pause queue", "show"}; c.Alertmanager.Enabled = false })
	for _, line := range []string{
		`"pause queue" "delete --queue=*/*" gmail.com/*`,
		`"pause queue" */* gmail.com/*`,
		`"show delete --queue=*/*" status`,
		`"show reload" status`,
	} {
		before := len(h.pmta.commands())
		code, body := h.command(opsToken, line)
		sent := h.pmta.commands()[before:]
		if code == 200 {
			t.Errorf("%s → %d %v; sent to PowerMTA %q (a quote-stripping reader sees %q)",
				line, code, body["status"], sent, strings.ReplaceAll(strings.Join(sent, ""), `"`, ""))
		}
	}
}

// FINDING (design): a token may send PowerMTA's widest wildcards. The
// Alertmanager path refuses a label that would widen a queue, but
// /v1/command accepts "pause queue */*" (every queue of every VirtualMTA)
// from any token — Alertmanager's too, since a token is not tied to an
// endpoint.
func TestSecFixedWildcardsAndTokenScope(t *testing.T) {
	h := newHarness(t, nil)
	for _, line := range []string{"pause queue */*", "pause queue *", "pause queue *.*/*", "pause queue ?*/*", "schedule */*", "list --queue=*/*"} {
		code, _ := h.command(amToken, line)
		t.Logf("alertmanager's token: %q → %d", line, code)
	}
	// Only the read-only list may name every queue; the commands that
	// change state are refused with a wildcard domain. (Tokens have no
	// scope of their own: the allow-list is the relay's.)
	if got := h.pmta.commands(); len(got) != 1 || got[0] != "list --queue=*/*" {
		t.Errorf("sent through /v1/command: %q, want only the list", got)
	}
}

func TestSecHeldBodyTricks(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Allow = []string{"show"}
		c.RatePerMinute, c.Burst = 10000, 10000
		c.Alertmanager.Enabled = false
	})
	auth := "Bearer " + opsToken
	for _, tc := range []struct {
		name, ct, body string
	}{
		{"duplicate keys (last wins)", "application/json", `{"command":"show status","command":"pause queue */*"}`},
		{"case-folded key", "application/json", `{"COMMAND":"show status"}`},
		{"unknown field", "application/json", `{"command":"show status","x":1}`},
		{"trailing garbage", "application/json", `{"command":"show status"} {"command":"pause queue */*"}`},
		{"array", "application/json", `[{"command":"show status"}]`},
		{"number", "application/json", `{"command":1}`},
		{"null", "application/json", `{"command":null}`},
		{"json without json type (read as form)", "text/plain", `{"command":"show status"}`},
		{"form", "application/x-www-form-urlencoded", `command=show+status`},
		{"form twice (first wins)", "application/x-www-form-urlencoded", `command=show+status&command=pause+queue+*/*`},
		{"json charset", "application/json; charset=utf-8", `{"command":"show status"}`},
		{"JSON upper-case type (read as form)", "Application/JSON", `{"command":"show status"}`},
		{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"command\"\r\n\r\nshow status\r\n--x--\r\n"},
		{"huge body", "application/json", `{"command":"` + strings.Repeat("a", 2<<20) + `"}`},
		{"escaped newline", "application/json", `{"command":"show status\nreload"}`},
		{"escaped NUL", "application/json", `{"command":"show status\u0000"}`},
		{"invalid utf-8", "application/json", "{\"command\":\"show status\xff\"}"},
	} {
		before := len(h.pmta.commands())
		code, out := h.secRaw("/v1/command", http.Header{"Authorization": {auth}, "Content-Type": {tc.ct}}, tc.body)
		t.Logf("%-45s %d %.120s sent=%q", tc.name, code, strings.TrimSpace(out), h.pmta.commands()[before:])
		for _, s := range h.pmta.commands()[before:] {
			if !strings.HasPrefix(s, "show ") {
				t.Errorf("%s: sent %q", tc.name, s)
			}
		}
	}
	// The query string is not read.
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/command?command=show+status", strings.NewReader(""))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("query string: %d", resp.StatusCode)
	}
}

// --- Alertmanager ---------------------------------------------------------

func secNotification(alerts ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "alerts": alerts})
	return string(b)
}

func secAlert(status string, labels map[string]string) map[string]any {
	return map[string]any{"status": status, "labels": labels}
}

func TestSecHeldLabelInjection(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Alertmanager.Cooldown, c.Alertmanager.MaxActionsPerHour = 0, 10000
		c.RatePerMinute, c.Burst = 10000, 10000
		c.Alertmanager.DryRun = false
		c.Alertmanager.Rules = []AlertRule{
			{Alert: "Q", Firing: "pause queue {domain}/*", Resolved: "resume queue {domain}/{vmta}"},
			{Alert: "S", Firing: "schedule {domain}"},
			{Alert: "L", Firing: "list --queue={domain}/* --older-than={age}"},
		}
	})
	for _, tc := range []struct{ alert, label, value string }{
		{"Q", "domain", "*"}, {"Q", "domain", "gmail.com/*"}, {"Q", "domain", "a b"}, {"Q", "domain", `a"b`},
		{"Q", "domain", "--x"}, {"Q", "domain", "-"}, {"Q", "domain", "."}, {"Q", "domain", "..."}, {"Q", "domain", "ｇmail.com"},
		{"Q", "domain", "gmail.com\nreload"}, {"Q", "domain", "?"}, {"Q", "domain", "{domain}"}, {"Q", "domain", ""},
		{"S", "domain", "--retry-recipients"}, {"S", "domain", "-retry"},
		{"L", "domain", "x"}, // age missing
	} {
		labels := map[string]string{"alertname": tc.alert, tc.label: tc.value}
		before := len(h.pmta.commands())
		_, out := h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
			secNotification(secAlert("firing", labels)))
		sent := h.pmta.commands()[before:]
		t.Logf("%s %s=%q → %.160s sent=%q", tc.alert, tc.label, tc.value, strings.TrimSpace(out), sent)
		if len(sent) != 0 {
			t.Errorf("%s=%q sent %q", tc.label, tc.value, sent)
		}
	}
	// The age label of the list rule: plainWord lets "1h" and "--x" alike;
	// Validate catches what is no age.
	labels := map[string]string{"alertname": "L", "domain": "gmail.com", "age": "--maxitems"}
	h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}}, secNotification(secAlert("firing", labels)))
	if s := h.pmta.commands(); len(s) != 0 {
		t.Errorf("sent %q", s)
	}
}

// FINDING: {domains:LABEL} values are not checked like labels. They come
// from the pmta_queue/pmta_domain points' domain tags, i.e. from recipient
// domains in PowerMTA's queues (mail senders choose them); a domain tag
// holding a wildcard widens the command past what the alert named. Here a
// point with domain "*" for ISP gmail makes the alert pause every queue.
func TestSecFixedDomainBookWildcard(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Alertmanager.Cooldown, c.Alertmanager.MaxActionsPerHour, c.Alertmanager.DryRun = 0, 1000, false
	})
	for _, d := range []string{"*", "*.com", "x?y.com", "--x"} {
		h.rl.Tap().Enqueue([]agent.Point{agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: d}, {Key: "isp", Value: "gmail"}},
			[]agent.Field{{Key: "rcp", Value: int64(1)}}, h.now)}, nil)
	}
	h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
		secNotification(secAlert("firing", map[string]string{"alertname": "PmtaIspDeferralHigh", "isp": "gmail"})))
	for _, s := range h.pmta.commands() {
		if strings.ContainsAny(strings.TrimSuffix(s, "/*"), "*?") {
			t.Errorf("the alert for ISP gmail sent %q", s)
		}
	}
}

// FINDING (availability): the hourly cap and the cool-down hold resumes
// too. Alertmanager sends "resolved" once and never repeats it, so a held
// resume leaves queues paused until someone notices. With the default cap
// (20) an ISP of 11 domains is enough: 11 pauses, then 9 resumes and 2
// held.
func TestSecFixedResumeHeldByCap(t *testing.T) {
	h := newHarness(t, nil) // defaults: cooldown 15m, cap 20
	for i := 0; i < 9; i++ {
		h.rl.Tap().Enqueue([]agent.Point{agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: fmt.Sprintf("g%d.example", i)}, {Key: "isp", Value: "gmail"}},
			[]agent.Field{{Key: "rcp", Value: int64(1)}}, h.now)}, nil)
	}
	h.rl.cfg.Alertmanager.DryRun = false
	post := func(status string) string {
		_, out := h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
			secNotification(secAlert(status, map[string]string{"alertname": "PmtaIspDeferralHigh", "isp": "gmail"})))
		return out
	}
	post("firing")
	h.now = h.now.Add(10 * time.Minute)
	post("resolved")
	pausedNow := map[string]bool{}
	for _, s := range h.pmta.commands() {
		f := strings.Fields(s)
		pausedNow[f[2]] = f[0] == "pause"
	}
	var stuck []string
	for q, p := range pausedNow {
		if p {
			stuck = append(stuck, q)
		}
	}
	if len(stuck) > 0 {
		t.Errorf("after firing and resolved, still paused: %q (held resumes: %d)", stuck, strings.Count(h.secAudit(), "held"))
	}
}

func (h *harness) secAudit() string { return strings.Join(h.results(), "\n") }

// FINDING (availability): a flapping alert. pause t0, resume t0+5m, pause
// t0+16m (cool-down of the pause over), resume t0+17m: held, since the
// last resume was 12 minutes ago. The alert is resolved, the queue stays
// paused.
func TestSecFixedFlapLeavesPaused(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Alertmanager.DryRun = false
		c.Alertmanager.Rules = []AlertRule{{Alert: "A", Firing: "pause queue {domain}/*", Resolved: "resume queue {domain}/*"}}
	})
	t0 := h.now
	var last string
	for _, step := range []struct {
		at     time.Duration
		status string
	}{{0, "firing"}, {5 * time.Minute, "resolved"}, {16 * time.Minute, "firing"}, {17 * time.Minute, "resolved"}} {
		h.now = t0.Add(step.at)
		_, out := h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
			secNotification(secAlert(step.status, map[string]string{"alertname": "A", "domain": "gmail.com"})))
		last = out
	}
	cmds := h.pmta.commands()
	if len(cmds) > 0 && strings.HasPrefix(cmds[len(cmds)-1], "pause") {
		t.Errorf("a flapping alert left the queue paused: commands sent %q; last answer %s", cmds, strings.TrimSpace(last))
	}
}

// FINDING (audit amplification and gaps): one notification of 1000
// identical alerts makes 1000 audit events (1 sent + 999 held); alerts
// that match no rule, and a notification that matches nothing, are not
// audited at all; an alert whose status is neither firing nor resolved
// counts as firing.
func TestSecFixedAlertAudit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Alertmanager.DryRun = false
		c.Alertmanager.Rules = []AlertRule{{Alert: "A", Firing: "pause queue {domain}/*", Resolved: "resume queue {domain}/*"}}
	})
	var alerts []map[string]any
	for i := 0; i < 1000; i++ {
		alerts = append(alerts, secAlert("firing", map[string]string{"alertname": "A", "domain": "gmail.com"}))
	}
	h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}}, secNotification(alerts...))
	t.Logf("1000 identical alerts: %d sent, %d audit events", len(h.pmta.commands()), len(h.secEvents()))

	n := len(h.secEvents())
	h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
		secNotification(secAlert("firing", map[string]string{"alertname": "Other"})))
	t.Logf("a notification matching no rule: %d audit events", len(h.secEvents())-n)

	code, _ := h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
		secNotification(alerts[0], alerts[0])[:0]+`{"alerts":[]}`)
	t.Logf("an empty notification: %d, %d audit events", code, len(h.secEvents())-n)

	h.now = h.now.Add(time.Hour)
	before := len(h.pmta.commands())
	h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
		secNotification(secAlert("bogus", map[string]string{"alertname": "A", "domain": "gmail.com"})))
	t.Logf("status \"bogus\" sent %q", h.pmta.commands()[before:])

	// Over the cap: 1001 alerts.
	code, _ = h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}}, secNotification(append(alerts, alerts[0])...))
	if code != 400 {
		t.Errorf("1001 alerts: %d", code)
	}
}

func TestSecHeldDryRunSendsNothing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Alertmanager.Cooldown, c.Alertmanager.MaxActionsPerHour = 0, 1000 })
	for _, st := range []string{"firing", "resolved", "firing"} {
		h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}},
			secNotification(secAlert(st, map[string]string{"alertname": "PmtaIspDeferralHigh", "isp": "gmail"})))
	}
	if s := h.pmta.commands(); len(s) != 0 {
		t.Errorf("dry run sent %q", s)
	}
	if !strings.Contains(h.secAudit(), "dry_run") {
		t.Errorf("no dry_run audit: %s", h.secAudit())
	}
}

// --- Rate limit under concurrency ----------------------------------------

func TestSecHeldRateLimitConcurrent(t *testing.T) {
	h := newHarness(t, nil) // 30/min, burst 10; the clock stands still
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := h.command(opsToken, "show status")
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 10 || codes[429] != 90 {
		t.Errorf("codes %v, want 10×200 and 90×429", codes)
	}
	if n := len(h.secEvents()); n != 100 {
		t.Errorf("%d audit events for 100 requests", n)
	}
}

// --- Audit: exactly once, injection, secrets -----------------------------

type secRunner struct {
	reply pmtacmd.Reply
	err   error
}

func (r secRunner) Run(_ context.Context, c pmtacmd.Command) (pmtacmd.Reply, error) {
	r.reply.Sent = c
	return r.reply, r.err
}

func TestSecHeldAuditOncePerOutcome(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Allow = []string{"pause queue"}
		c.RatePerMinute, c.Burst = 1, 1
		c.Alertmanager.Enabled = false
	})
	count := func(f func()) int { n := len(h.secEvents()); f(); return len(h.secEvents()) - n }
	cases := []struct {
		name string
		f    func()
	}{
		{"sent", func() { h.command(opsToken, "pause queue gmail.com/*") }},
		{"rate limited", func() { h.command(opsToken, "pause queue gmail.com/*") }},
		{"no token", func() { h.command("", "pause queue gmail.com/*") }},
		{"bad body", func() { h.post("/v1/command", amToken, "application/json", "{") }},
	}
	for _, c := range cases {
		if n := count(c.f); n != 1 {
			t.Errorf("%s: %d events", c.name, n)
		}
	}
	h.now = h.now.Add(time.Hour)
	for _, c := range []struct{ name, line string }{{"parse", "pause queue \"x"}, {"allow", "show status"}, {"validate", "pause queue a b"}} {
		h.now = h.now.Add(time.Hour)
		if n := count(func() { h.command(opsToken, c.line) }); n != 1 {
			t.Errorf("%s: %d events", c.name, n)
		}
	}
	for _, err := range []error{&pmtacmd.RefusedError{Message: "no"}, fmt.Errorf("down")} {
		h.rl.SetRunner(secRunner{err: err}, "pmta")
		h.now = h.now.Add(time.Hour)
		if n := count(func() { h.command(opsToken, "pause queue gmail.com/*") }); n != 1 {
			t.Errorf("%v: %d events", err, n)
		}
	}
}

// The pmta_event point, written by the agent's encoder and read by the
// reference decoder, carries what the caller or PowerMTA said as data:
// no extra point, tag or field.
func TestSecHeldEventLineProtocol(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Allow = []string{"pause queue", "show"}
		c.RatePerMinute, c.Burst = 1000, 1000
		c.Alertmanager.Enabled = false
	})
	h.rl.SetRunner(secRunner{reply: pmtacmd.Reply{OK: true, Status: "success",
		Message: "ok\npmta_event,kind=forged,token=root count=1i 1\nx=1 \"quote\" back\\ ,comma=eq\\"}}, "pmta")
	for _, line := range []string{
		`pause queue gmail.com/*`,
		`"x,verb=forged y" a`, `x\ a`, `a\`, `a=b,c=d`, `"a b\" c`, "é\u0301", `"pause queue" x gmail.com/*`,
		"\"" + strings.Repeat("v", 1000) + "\"",
	} {
		h.command(opsToken, line)
	}
	var buf []byte
	for _, p := range h.secEvents() {
		buf = agent.AppendLineProtocol(buf, &p)
	}
	dec := lp.NewDecoderWithBytes(buf)
	n := 0
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil || string(m) != "pmta_event" {
			t.Fatalf("measurement %q %v", m, err)
		}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatalf("tag: %v\n%s", err, buf)
			}
			if k == nil {
				break
			}
			if !map[string]bool{"kind": true, "result": true, "token": true, "verb": true}[string(k)] || string(v) == "forged" {
				t.Errorf("tag %s=%s", k, v)
			}
		}
		for {
			k, _, err := dec.NextField()
			if err != nil {
				t.Fatalf("field: %v\n%s", err, buf)
			}
			if k == nil {
				break
			}
		}
		n++
	}
	if n != len(h.secEvents()) {
		t.Errorf("%d lines decoded for %d events:\n%s", n, len(h.secEvents()), buf)
	}
	// What the verb tag became: any caller-chosen word, up to 1 KiB.
	verbs := map[string]bool{}
	for _, p := range h.secEvents() {
		v, _ := p.TagValue("verb")
		verbs[v] = true
	}
	for v := range verbs {
		if v != "" && v != "other" && !allowed(h.rl.cfg.Allow, v) {
			t.Errorf("verb tag %q: a refused caller's words became a series", v)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		if len(k) > 40 {
			k = k[:40] + "…"
		}
		out = append(out, k)
	}
	return out
}

// The API key never appears in what the relay answers, logs or audits —
// tested with the real client against a PowerMTA (or proxy) that echoes
// the key back, raw and JSON-escaped.
func TestSecFixedAPIKeyEcho(t *testing.T) {
	const key = "k3y/with+slash<and>amp&0123456789abcdef"
	for _, tc := range []struct {
		name  string
		reply func(w http.ResponseWriter, r *http.Request)
	}{
		{"raw in message", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"status":"success","message":"key %s","data":""}`, r.Header.Get("X-API-Key"))
		}},
		{"json-escaped (\\/ as PHP writes it)", func(w http.ResponseWriter, r *http.Request) {
			k := strings.ReplaceAll(r.Header.Get("X-API-Key"), "/", `\/`)
			fmt.Fprintf(w, `{"status":"success","message":"key %s","data":""}`, k)
		}},
		{"json \\u escapes (Go's encoder)", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"status": "success", "message": "key " + r.Header.Get("X-API-Key"), "data": ""})
			w.Write(b)
		}},
		{"refused, escaped", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"status": "error", "message": "bad key " + r.Header.Get("X-API-Key")})
			w.Write(b)
		}},
		{"data holds the key, escaped", func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"status": "success", "message": "ok", "data": map[string]string{"http-api-key": r.Header.Get("X-API-Key")}})
			w.Write(b)
		}},
		{"500 echo escaped", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			b, _ := json.Marshal(map[string]any{"echo": r.Header.Get("X-API-Key")})
			w.Write(b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := httptest.NewServer(http.HandlerFunc(tc.reply))
			defer api.Close()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			pc := poller.DefaultConfig()
			pc.Enabled, pc.URL, pc.APIKey = true, api.URL, key
			client, err := pmtacmd.NewClient(pc, log)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, nil)
			h.rl.log = log
			h.rl.SetRunner(client, "pmta")
			_, body := h.secRaw("/v1/command", http.Header{"Authorization": {"Bearer " + opsToken}, "Content-Type": {"application/json"}}, `{"command":"show status"}`)
			var lines []byte
			for _, p := range h.secEvents() {
				lines = agent.AppendLineProtocol(lines, &p)
			}
			var leaks []string
			var decoded any
			_ = json.Unmarshal([]byte(body), &decoded)
			for what, s := range map[string]string{"answer": body, "answer (decoded)": fmt.Sprint(decoded), "log": logs.String(), "pmta_event": string(lines)} {
				if strings.Contains(s, key) {
					leaks = append(leaks, what)
				}
			}
			if len(leaks) > 0 {
				t.Errorf("[%s]: the API key appears in: %s\nanswer: %s", tc.name, strings.Join(leaks, ", "), strings.TrimSpace(body))
			}
		})
	}
}

func secSHA(s string) [32]byte {
	t, _ := parseTokens([]byte("x " + s))
	return t.hashes[0]
}

// FINDING (amplification): {domains:isp} fans each alert out to up to 100
// lines and a notification may hold 1000 alerts: one request of ~100 KB
// makes 100,000 audit events (log lines and pmta_event points), all but
// max_actions_per_hour of them "held".
func TestSecFixedFanOut(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Alertmanager.DryRun = false })
	var pts []agent.Point
	for i := 0; i < 150; i++ {
		pts = append(pts, agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: fmt.Sprintf("d%03d.example", i)}, {Key: "isp", Value: "gmail"}},
			[]agent.Field{{Key: "rcp", Value: int64(1)}}, h.now))
	}
	h.rl.Tap().Enqueue(pts, nil)
	var alerts []map[string]any
	for i := 0; i < 1000; i++ {
		alerts = append(alerts, secAlert("firing", map[string]string{"alertname": "PmtaIspDeferralHigh", "isp": "gmail"}))
	}
	body := secNotification(alerts...)
	start := time.Now()
	code, out := h.secRaw("/v1/alertmanager", http.Header{"Authorization": {"Bearer " + amToken}, "Content-Type": {"application/json"}}, body)
	t.Logf("one %d-byte notification → %d, %d-byte answer, %d sent, %d audit events, %s",
		len(body), code, len(out), len(h.pmta.commands()), len(h.secEvents()), time.Since(start).Round(time.Millisecond))
	if sent, ev := len(h.pmta.commands()), len(h.secEvents()); sent > h.rl.cfg.Alertmanager.MaxActionsPerHour || ev > sent+5 {
		t.Errorf("1000 alerts × 150 domains: %d sent, %d audit events; want at most the cap and one event for what it held", sent, ev)
	}
}

// The seed dialect: Translate does nothing, and the allow-list and Validate
// judge exactly what is sent. The seed's own verbs (retry queue, show queue
// --age-min) are therefore refused, which is safe but leaves the seed
// proxy's retry unusable through the relay.
func TestSecHeldSeedDialect(t *testing.T) {
	h := newHarness(t, nil)
	rl, err := New(h.rl.cfg, "seed", h.pmta, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		code int
		sent string
	}{
		{"pause queue gmail.com", 200, "pause queue gmail.com"},
		{"PAUSE QUEUE gmail.com", 200, "PAUSE QUEUE gmail.com"},
		{"retry queue gmail.com", 403, ""},
		{"show queue --age-min=1h", 400, ""},
		{"delete --queue=*/*", 403, ""},
		{"pause queue gmail.com extra", 400, ""},
	} {
		before := len(h.pmta.commands())
		res := rl.forwardEvent(context.Background(), event{kind: "command", token: "ops", command: tc.line}, false, nil)
		sent := h.pmta.commands()[before:]
		if res.code != tc.code || strings.Join(sent, "") != tc.sent {
			t.Errorf("%q: %d sent %q, want %d %q", tc.line, res.code, sent, tc.code, tc.sent)
		}
	}
}
