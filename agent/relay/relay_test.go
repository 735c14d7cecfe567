package relay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

const (
	opsToken = "0123456789abcdef0123456789abcdef-ops"
	amToken  = "fedcba9876543210fedcba9876543210-am"
)

// fakePMTA records what it is sent and answers as told.
type fakePMTA struct {
	mu   sync.Mutex
	sent []string
	err  error
}

func (f *fakePMTA) Run(_ context.Context, c pmtacmd.Command) (pmtacmd.Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, c.String())
	if f.err != nil {
		return pmtacmd.Reply{Sent: c, Status: "error", Message: "no such queue"}, f.err
	}
	return pmtacmd.Reply{Sent: c, OK: true, Status: "success", Message: "Queue(s) paused."}, nil
}

func (f *fakePMTA) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

type harness struct {
	t      *testing.T
	rl     *Relay
	pmta   *fakePMTA
	srv    *httptest.Server
	mu     sync.Mutex
	events []agent.Point
	now    time.Time
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte("# who may act\nops "+opsToken+"\nalertmanager:"+amToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Enabled, cfg.TokensFile = true, tf
	cfg.Alertmanager.Enabled = true
	cfg.Alertmanager.Rules = []AlertRule{{Alert: "PmtaIspDeferralHigh", Firing: "pause queue {domains:isp}/*", Resolved: "resume queue {domains:isp}/*"}}
	if mutate != nil {
		mutate(&cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	h := &harness{t: t, pmta: &fakePMTA{}, now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	rl, err := New(cfg, "pmta", h.pmta, func(b agent.Batch) {
		h.mu.Lock()
		h.events = append(h.events, b.Points...)
		h.mu.Unlock()
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rl.now = func() time.Time { return h.now }
	mux := http.NewServeMux()
	for p, hd := range rl.Routes() {
		mux.Handle(p, hd)
	}
	h.rl, h.srv = rl, httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	// The domains of the ISP gmail, as the poller's points carry them.
	rl.Tap().Enqueue([]agent.Point{
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: "gmail.com"}, {Key: "isp", Value: "gmail"}}, []agent.Field{{Key: "rcp", Value: int64(1)}}, h.now),
		agent.NewPoint("pmta_domain", []agent.Tag{{Key: "domain", Value: "googlemail.com"}, {Key: "isp", Value: "gmail"}}, []agent.Field{{Key: "rcp", Value: int64(1)}}, h.now),
	}, nil)
	return h
}

func (h *harness) post(path, token, contentType, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (h *harness) command(token, line string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]string{"command": line})
	return h.post("/v1/command", token, "application/json", string(b))
}

// results lists the audit's pmta_event points as "token verb result".
func (h *harness) results() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.events {
		tok, _ := p.TagValue("token")
		verb, _ := p.TagValue("verb")
		res, _ := p.TagValue("result")
		out = append(out, strings.Join(strings.Fields(tok+" "+verb+" "+res), " "))
	}
	return out
}

func TestCommandRelay(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name, token, line string
		code              int
		status            string
		sent              string
	}{
		{"allowed", opsToken, "pause queue gmail.com/*", 200, "sent", "pause queue gmail.com/*"},
		{"seed verb translated", opsToken, "retry queue gmail.com", 200, "sent", "schedule gmail.com/*"},
		{"no token", "", "pause queue gmail.com/*", 401, "refused", ""},
		{"wrong token", opsToken + "x", "pause queue gmail.com/*", 401, "refused", ""},
		{"verb not allowed", opsToken, "delete --queue=gmail.com/*", 403, "refused", ""},
		{"bad queue", opsToken, "pause queue gmail.com/vmta;rm", 400, "refused", ""},
		{"option smuggled", opsToken, "pause queue gmail.com/* --all", 400, "refused", ""},
		{"control character", opsToken, "pause queue gmail.com/*\nreload", 400, "refused", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.pmta.commands())
			code, body := h.command(tc.token, tc.line)
			if code != tc.code || body["status"] != tc.status {
				t.Fatalf("%d %v, want %d %s", code, body, tc.code, tc.status)
			}
			sent := h.pmta.commands()[before:]
			if tc.sent == "" && len(sent) != 0 || tc.sent != "" && (len(sent) != 1 || sent[0] != tc.sent) {
				t.Fatalf("sent to PowerMTA %q, want %q", sent, tc.sent)
			}
		})
	}
	want := []string{"ops pause queue sent", "ops schedule sent", "- refused", "- refused", "ops other refused",
		"ops pause queue refused", "ops pause queue refused", "ops refused"}
	if got := h.results(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit %q\nwant  %q", got, want)
	}

	// PowerMTA refusing, and PowerMTA down: reported and audited.
	h.pmta.err = &pmtacmd.RefusedError{Message: "no such queue"}
	if code, body := h.command(opsToken, "resume queue gmail.com/*"); code != 422 || body["status"] != "refused_by_pmta" {
		t.Errorf("refused by PowerMTA: %d %v", code, body)
	}
	h.pmta.err = errors.New("dial tcp 127.0.0.1:8080: connection refused")
	if code, body := h.command(opsToken, "resume queue gmail.com/*"); code != 502 || body["status"] != "failed" {
		t.Errorf("PowerMTA down: %d %v", code, body)
	}
}

func TestCommandRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RatePerMinute, c.Burst = 6, 2 })
	codes := []int{}
	for range 3 {
		code, _ := h.command(opsToken, "show status")
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes %v, want 200 200 429", codes)
	}
	// Another token has its own budget; time refills it.
	if code, _ := h.command(amToken, "show status"); code != 200 {
		t.Errorf("the other token: %d", code)
	}
	h.now = h.now.Add(10 * time.Second)
	if code, _ := h.command(opsToken, "show status"); code != 200 {
		t.Errorf("after 10 s: %d", code)
	}
}

func amBody(status, isp string, extra map[string]string) string {
	labels := map[string]string{"alertname": "PmtaIspDeferralHigh", "severity": "critical", "server": "mta01"}
	if isp != "" {
		labels["isp"] = isp
	}
	for k, v := range extra {
		labels[k] = v
	}
	b, _ := json.Marshal(map[string]any{"version": "4", "status": status, "alerts": []any{map[string]any{"status": status, "labels": labels}}})
	return string(b)
}

func TestAlertmanager(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Alertmanager.DryRun = false; c.Alertmanager.MaxActionsPerHour = 3 })
	post := func(body string) (int, map[string]any) {
		return h.post("/v1/alertmanager", amToken, "application/json", body)
	}
	if code, _ := post(amBody("firing", "gmail", nil)); code != 200 {
		t.Fatalf("firing: %d", code)
	}
	want := []string{"pause queue gmail.com/*", "pause queue googlemail.com/*"}
	if got := h.pmta.commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q, want %q", got, want)
	}
	// Again within the cool-down: held.
	if _, body := post(amBody("firing", "gmail", nil)); !strings.Contains(toJSON(body), `"status":"held"`) || len(h.pmta.commands()) != 2 {
		t.Errorf("repeat within the cool-down: %v, sent %q", body, h.pmta.commands())
	}
	// Resolved: resumed.
	post(amBody("resolved", "gmail", nil))
	if got := h.pmta.commands(); len(got) != 4 || got[2] != "resume queue gmail.com/*" {
		t.Errorf("resolved: sent %q", got)
	}
	// Without the label, with a widening value, or an unknown ISP: nothing.
	for _, body := range []string{amBody("firing", "", nil), amBody("firing", "*", nil), amBody("firing", "gmail com", nil), amBody("firing", "aol", nil)} {
		post(body)
	}
	if got := h.pmta.commands(); len(got) != 4 {
		t.Errorf("sent %q for alerts that name no queue", got[4:])
	}
	// The cap: 3 firing actions an hour, 2 taken (resolutions count for
	// nothing and are never held).
	h.now = h.now.Add(20 * time.Minute)
	post(amBody("firing", "gmail", nil))
	if got := h.pmta.commands(); len(got) != 5 {
		t.Errorf("over the cap: sent %d, want 5", len(got))
	}
	post(amBody("resolved", "gmail", nil))
	if got := h.pmta.commands(); len(got) != 7 || got[5] != "resume queue gmail.com/*" || got[6] != "resume queue googlemail.com/*" {
		t.Errorf("a resolution over the cap: sent %q, want both resumes", got[5:])
	}
	// A wrong token: 401, nothing sent.
	if code, _ := h.post("/v1/alertmanager", opsToken+"x", "application/json", amBody("firing", "gmail", nil)); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if r := h.results(); !strings.Contains(strings.Join(r, "|"), "alertmanager pause queue sent") {
		t.Errorf("audit %q", r)
	}
}

func TestAlertmanagerDryRun(t *testing.T) {
	h := newHarness(t, nil) // dry_run is the default
	h.post("/v1/alertmanager", amToken, "application/json", amBody("firing", "gmail", nil))
	if got := h.pmta.commands(); len(got) != 0 {
		t.Fatalf("dry run sent %q", got)
	}
	if r := h.results(); len(r) != 2 || r[0] != "alertmanager pause queue dry_run" {
		t.Errorf("audit %q", r)
	}
}

// A token's scope: Alertmanager's may post notifications and no command.
func TestTokenScope(t *testing.T) {
	h := newHarness(t, nil)
	tf := h.rl.cfg.TokensFile
	if err := os.WriteFile(tf, []byte("ops "+opsToken+" command\nalertmanager "+amToken+" alertmanager\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.rl.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	if code, body := h.command(amToken, "pause queue gmail.com/*"); code != 403 || !strings.Contains(toJSON(body), "may not use /v1/command") {
		t.Errorf("Alertmanager's token on /v1/command: %d %v", code, body)
	}
	if code, _ := h.post("/v1/alertmanager", opsToken, "application/json", amBody("firing", "gmail", nil)); code != 403 {
		t.Errorf("the operator's command token on /v1/alertmanager: %d", code)
	}
	if code, _ := h.command(opsToken, "show status"); code != 200 {
		t.Errorf("the operator's token on /v1/command: %d", code)
	}
	if len(h.pmta.commands()) != 1 {
		t.Errorf("sent %q", h.pmta.commands())
	}
	if _, err := parseTokens([]byte("ops " + opsToken + " everything")); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Errorf("an unknown scope: %v", err)
	}
}

func TestTokensFile(t *testing.T) {
	for _, tc := range []struct{ body, err string }{
		{"ops " + opsToken, ""},
		{"ops short", "at least 32"},
		{"ops " + opsToken + "\nops " + amToken, "twice"},
		{"ops " + opsToken + "\nam " + opsToken, "has the token of"},
		{"o$ps " + opsToken, "letters, digits"},
		{"# nothing\n", "no tokens"},
	} {
		_, err := parseTokens([]byte(tc.body))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), opsToken) {
			t.Errorf("the error tells the token: %v", err)
		}
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "tokens")
	if err := os.WriteFile(f, []byte("ops "+opsToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTokens(f); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable tokens file: %v", err)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	// Through a symbolic link: what it leads to is read and checked.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(f, link); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTokens(link); err != nil {
		t.Errorf("a link to a good tokens file: %v", err)
	}
	if _, err := loadTokens(dir); err == nil || !strings.Contains(err.Error(), "no regular file") {
		t.Errorf("a directory: %v", err)
	}
	// Owned by another user, who could give itself a token: refused (only
	// root can hand a file to another user, to test it).
	if os.Geteuid() == 0 {
		if err := os.Chown(f, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := loadTokens(f); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("a tokens file of another user: %v", err)
		} // Root checking the configuration (check-config before the
		// service starts): the packages' user's file is its own.
		lookupUser = func(string) (*user.User, error) { return &user.User{Uid: "65534"}, nil }
		defer func() { lookupUser = user.Lookup }()
		if _, err := loadTokens(f); err != nil {
			t.Errorf("root reading the pmta-agent user's tokens file: %v", err)
		}

	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enabled, cfg.TokensFile = true, "/x"
	cfg.Allow = []string{"delete"}
	cfg.Alertmanager.Enabled = true
	cfg.Alertmanager.Rules = []AlertRule{{Alert: "A", Firing: "schedule {isp"}}
	got := errors.Join(cfg.Validate()...).Error()
	for _, want := range []string{`allow: "delete" is not one of`, "a { without its }"} {
		if !strings.Contains(got, want) {
			t.Errorf("Validate: %s\nwant %q", got, want)
		}
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// slowPMTA answers after a delay, as a PowerMTA busy with a large queue.
type slowPMTA struct{ delay time.Duration }

func (s slowPMTA) Run(ctx context.Context, c pmtacmd.Command) (pmtacmd.Reply, error) {
	time.Sleep(s.delay)
	return pmtacmd.Reply{Sent: c, OK: true, Status: "success", Message: "ok"}, nil
}

// An answer that PowerMTA took longer to give than the listener's write
// timeout still arrives: each answer's own deadline comes from api.timeout
// (SetCommandTimeout), which a reload changes, and not from the timeout the
// listener started with.
func TestCommandAnswerOutlivesTheListenersWriteTimeout(t *testing.T) {
	h := newHarness(t, nil)
	h.rl.SetRunner(slowPMTA{delay: 1500 * time.Millisecond}, "pmta")
	mux := http.NewServeMux()
	for p, hd := range h.rl.Routes() {
		mux.Handle(p, hd)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.WriteTimeout = time.Second // as set at start for an api.timeout of a second
	srv.Start()
	defer srv.Close()
	h.srv = srv
	post := func() error {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/command", strings.NewReader(`{"command":"pause queue gmail.com/*"}`))
		req.Header.Set("Authorization", "Bearer "+opsToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	if err := post(); err == nil {
		t.Fatal("without a command timeout the listener's 1 s cut nothing off: the test proves nothing")
	}
	h.rl.SetCommandTimeout(5 * time.Second) // a reload raised api.timeout
	if err := post(); err != nil {
		t.Fatalf("the answer was cut off: %v", err)
	}
}
