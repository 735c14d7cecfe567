package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// commandKey is an http-api-key as PowerMTA wants one: 32 to 128 of
// [A-Za-z0-9_].
const commandKey = "Cmd_Key_0123456789abcdef01234567"

// commandSim starts the simulator, which wants commandKey, and writes an
// agent configuration pointing at it in dialect.
func commandSim(t *testing.T, dialect string) (*sim.Sim, *httptest.Server, string) {
	t.Helper()
	s := sim.New(sim.Options{Seed: 13, APIKey: commandKey})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "agent.yaml")
	writeTestFile(t, path, fmt.Sprintf("api:\n  url: %s\n  dialect: %s\n  api_key: %s\n", srv.URL, dialect, commandKey))
	return s, srv, path
}

// runCommand runs `pmta-agent command ARGS…` and checks that nothing it
// printed holds the API key.
func runCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = run(append([]string{"command"}, args...), &out, &errOut)
	for what, s := range map[string]string{"stdout": out.String(), "stderr": errOut.String()} {
		if strings.Contains(s, commandKey) {
			t.Errorf("%s holds the API key:\n%s", what, s)
		}
	}
	return code, out.String(), errOut.String()
}

// pausedByDomain reads the simulator's /queues, as the poller does, and
// tells for each queue of domain whether it is paused.
func pausedByDomain(t *testing.T, srv *httptest.Server, domain string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/queues?format=json&maxitems=0", nil)
	req.Header.Set("X-API-Key", commandKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Queue []struct {
				Name   string `json:"name"`
				Paused bool   `json:"paused"`
			} `json:"queue"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, q := range env.Data.Queue {
		if strings.HasPrefix(q.Name, domain+"/") {
			out[q.Name] = q.Paused
		}
	}
	if len(out) == 0 {
		t.Fatalf("the simulator has no queue of %s", domain)
	}
	return out
}

// pausedQueues returns the simulator's paused queues: it pauses some by
// itself.
func pausedQueues(s *sim.Sim) map[string]bool {
	out := map[string]bool{}
	for _, q := range s.Snapshot().Queues {
		if q.Paused {
			out[q.Name] = true
		}
	}
	return out
}

// checkOnlyDomainPaused checks that every queue of domain is paused now and
// that no other queue changed since before.
func checkOnlyDomainPaused(t *testing.T, s *sim.Sim, before map[string]bool, domain string) {
	t.Helper()
	n := 0
	for _, q := range s.Snapshot().Queues {
		switch {
		case q.Domain == domain:
			n++
			if !q.Paused {
				t.Errorf("%s is not paused", q.Name)
			}
		case q.Paused != before[q.Name]:
			t.Errorf("%s: paused %v → %v", q.Name, before[q.Name], q.Paused)
		}
	}
	if n == 0 {
		t.Errorf("no queue of %s", domain)
	}
}

// pause queue and resume queue, the seed document's bare domain given /*
// with a note: every VirtualMTA's queue of the domain changes, no other.
func TestCommandPauseResume(t *testing.T) {
	s, srv, cfg := commandSim(t, "pmta")
	before := pausedQueues(s)
	code, out, errOut := runCommand(t, "-config", cfg, "pause", "queue", "outlook.com")
	if code != 0 || out != "Queue(s) paused.\n" {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if want := `note: "pause queue outlook.com" is "pause queue outlook.com/*" on PowerMTA: `; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr %q, want the note %q", errOut, want)
	}
	for name, paused := range pausedByDomain(t, srv, "outlook.com") {
		if !paused {
			t.Errorf("/queues shows %s not paused", name)
		}
	}
	checkOnlyDomainPaused(t, s, before, "outlook.com")

	code, out, errOut = runCommand(t, "-config", cfg, "resume", "queue", "outlook.com/*")
	if code != 0 || out != "Queue(s) resumed.\n" || errOut != "" {
		t.Fatalf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for name, paused := range pausedByDomain(t, srv, "outlook.com") {
		if paused {
			t.Errorf("/queues shows %s still paused", name)
		}
	}
}

// schedule, and the seed document's retry queue translated into it: a
// queue in backoff is retried now.
func TestCommandScheduleAndRetry(t *testing.T) {
	s, _, cfg := commandSim(t, "pmta")
	backoff := func(domain string) (n int) {
		for _, q := range s.Snapshot().Queues {
			if q.Domain == domain && q.Backoff {
				n++
			}
		}
		return n
	}
	for _, domain := range []string{"gmail.com", "yahoo.com"} {
		if code, _, errOut := runCommand(t, "-config", cfg, "set", "queue", "--mode=backoff", domain+"/*"); code != 0 {
			t.Fatalf("set queue: exit %d: %s", code, errOut)
		}
		if backoff(domain) == 0 {
			t.Fatalf("no %s queue in backoff", domain)
		}
	}

	code, out, errOut := runCommand(t, "-config", cfg, "retry", "queue", "gmail.com")
	if code != 0 || !strings.HasSuffix(out, "matching queues scheduled.\n") {
		t.Fatalf("retry: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if want := `note: "retry queue gmail.com" is "schedule gmail.com/*" on PowerMTA: PowerMTA has no retry verb`; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	if n := backoff("gmail.com"); n != 0 {
		t.Errorf("%d gmail.com queues still in backoff", n)
	}

	code, out, errOut = runCommand(t, "-config", cfg, "schedule", "yahoo.com/*")
	if code != 0 || !strings.HasSuffix(out, "matching queues scheduled.\n") || errOut != "" {
		t.Fatalf("schedule: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := backoff("yahoo.com"); n != 0 {
		t.Errorf("%d yahoo.com queues still in backoff", n)
	}
}

// show status and show queues print PowerMTA's data; -json the whole reply.
func TestCommandShow(t *testing.T) {
	s, _, cfg := commandSim(t, "pmta")
	code, out, errOut := runCommand(t, "-config", cfg, "show", "status")
	if code != 0 || !strings.Contains(out, `"startupTime"`) || !strings.Contains(out, "\n  ") {
		t.Fatalf("show status: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}

	code, out, errOut = runCommand(t, "-config", cfg, "-json", "show", "queues", "--maxitems=3")
	if code != 0 || errOut != "" {
		t.Fatalf("show queues: exit %d, stderr %q", code, errOut)
	}
	var reply struct {
		Sent   string `json:"sent"`
		OK     bool   `json:"ok"`
		Status string `json:"status"`
		Data   struct {
			Queue []struct {
				Name string `json:"name"`
			} `json:"queue"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		t.Fatalf("-json printed %q: %v", out, err)
	}
	if !reply.OK || reply.Status != "success" || reply.Sent != "show queues --maxitems=3" || len(reply.Data.Queue) != 3 ||
		reply.Data.Queue[0].Name != s.Snapshot().Queues[0].Name {
		t.Errorf("reply %+v", reply)
	}

	// The seed document's "show queue" is PowerMTA's "show queues".
	code, out, errOut = runCommand(t, "-config", cfg, "show", "queue", "--paused=no")
	if code != 0 || !strings.Contains(errOut, `"show queue --paused=no" is "show queues --paused=no"`) || !strings.Contains(out, `"queue": [`) {
		t.Errorf("show queue: exit %d, stderr %q, stdout %.200q", code, errOut, out)
	}
}

// The seed document's "show queue --age-min=1h" is sent as PowerMTA's
// "list --queue=*/* --older-than=1h": a recording server shows the form
// sent, the simulator answers it.
func TestCommandListOlderThan(t *testing.T) {
	var form url.Values
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != commandKey {
			http.Error(w, "access forbidden", http.StatusForbidden)
			return
		}
		_ = r.ParseForm()
		form = r.PostForm
		io.WriteString(w, `{"data":{"rcpt":[{"queue":"gmail.com/vmta-gm-011","rcpt":"a@gmail.com"}]},"status":"success","message":""}`)
	}))
	defer fake.Close()
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	writeTestFile(t, cfg, fmt.Sprintf("api:\n  url: %s\n  api_key: %s\n", fake.URL, commandKey))
	code, out, errOut := runCommand(t, "-config", cfg, "show", "queue", "--age-min=1h")
	if code != 0 || !strings.Contains(out, `"queue": "gmail.com/vmta-gm-011"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if form.Get("command") != "list --queue=*/* --older-than=1h" || form.Get("format") != "json" {
		t.Errorf("form %v", form)
	}
	if !strings.Contains(errOut, `"show queue --age-min=1h" is "list --queue=*/* --older-than=1h" on PowerMTA`) {
		t.Errorf("stderr %q", errOut)
	}
	code, _, errOut = runCommand(t, "-config", cfg, "list", "--queue=gmail.com", "--older-than=6h")
	if code != 0 || form.Get("command") != "list --queue=gmail.com/* --older-than=6h" {
		t.Errorf("list: exit %d, form %v, stderr %q", code, form, errOut)
	}

	// The simulator lists per queue (it keeps no recipients): a paused
	// queue's recipients are as old as the pause.
	_, _, simCfg := commandSim(t, "pmta")
	if code, _, errOut := runCommand(t, "-config", simCfg, "pause", "queue", "gmail.com/*"); code != 0 {
		t.Fatalf("pause: %d %s", code, errOut)
	}
	code, out, errOut = runCommand(t, "-config", simCfg, "list", "--queue=gmail.com", "--older-than=0s")
	if code != 0 || !strings.Contains(out, `"queue": "gmail.com/`) {
		t.Errorf("list on the simulator: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Over an hour: the queue the model has held paused for hours, not
	// gmail's, paused a moment ago.
	code, out, errOut = runCommand(t, "-config", simCfg, "show", "queue", "--age-min=1h")
	var listedQueues []struct {
		Queue  string
		Oldest int64 `json:"oldestSeconds"`
	}
	if err := json.Unmarshal([]byte(out), &listedQueues); code != 0 || err != nil || len(listedQueues) == 0 || !strings.Contains(errOut, "list --queue=*/* --older-than=1h") {
		t.Fatalf("show queue --age-min=1h: exit %d (%v), stdout %q, stderr %q", code, err, out, errOut)
	}
	for _, q := range listedQueues {
		if q.Oldest < 3600 || strings.HasPrefix(q.Queue, "gmail.com/") {
			t.Errorf("listed %s, oldest %d s", q.Queue, q.Oldest)
		}
	}
}

// A refusal: exit 1, PowerMTA's message on stderr; with -json the reply on
// stdout as well.
func TestCommandRefused(t *testing.T) {
	_, _, cfg := commandSim(t, "pmta")
	code, out, errOut := runCommand(t, "-config", cfg, "pause", "queue", "nosuch.example/*")
	if code != 1 || out != "" || errOut != "pmta-agent command: PowerMTA refused \"pause queue nosuch.example/*\": no queue matches \"nosuch.example/*\"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCommand(t, "-config", cfg, "-json", "frobnicate")
	var reply struct {
		OK      bool   `json:"ok"`
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(out), &reply); code != 1 || err != nil || reply.OK || reply.Status != "error" || !strings.Contains(reply.Message, "unknown command") {
		t.Errorf("-json refusal: exit %d, stdout %q", code, out)
	}
}

// The seed dialect: the seed's words as they are, a text reply.
func TestCommandSeedDialect(t *testing.T) {
	s, _, cfg := commandSim(t, "seed")
	before := pausedQueues(s)
	code, out, errOut := runCommand(t, "-config", cfg, "pause", "queue", "outlook.com")
	if code != 0 || out != "Queue(s) paused.\n" || errOut != "" {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	checkOnlyDomainPaused(t, s, before, "outlook.com")
	code, out, errOut = runCommand(t, "-config", cfg, "retry", "queue", "outlook.com")
	if code != 0 || !strings.HasSuffix(out, "matching queues scheduled.\n") || errOut != "" {
		t.Errorf("retry: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCommand(t, "-config", cfg, "resume", "queue", "outlook.com")
	if code != 0 || out != "Queue(s) resumed.\n" {
		t.Errorf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runCommand(t, "-config", cfg, "show", "status")
	if code != 1 || !strings.Contains(errOut, `PowerMTA refused "show status": expected "pause|resume|retry queue`) {
		t.Errorf("show status on the seed proxy: exit %d, stderr %q", code, errOut)
	}
}

// On a PowerMTA host the URL and the key come from PowerMTA's own
// configuration, as for every other command.
func TestCommandUsesPowerMTAConfig(t *testing.T) {
	s, srv, _ := commandSim(t, "pmta")
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	pmtaConf := filepath.Join(dir, "config")
	writeTestFile(t, pmtaConf, fmt.Sprintf("http-mgmt-port %s\nhttp-access 127.0.0.1 monitor\nhttp-api-key %s\n", u.Port(), commandKey))
	t.Setenv("PMTA_AGENT_PMTA__CONFIG", pmtaConf)
	t.Setenv("PMTA_AGENT_PMTA__WEBMON_CERT", filepath.Join(dir, "no-cert.pem"))
	code, out, errOut := runCommand(t, "pause", "queue", "gmail.com/*")
	if code != 0 || out != "Queue(s) paused.\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, q := range s.Snapshot().Queues {
		if q.Domain == "gmail.com" && !q.Paused {
			t.Errorf("%s not paused", q.Name)
		}
	}
}

func TestCommandFailures(t *testing.T) {
	_, srv, cfg := commandSim(t, "pmta")
	dir := t.TempDir()
	off := filepath.Join(dir, "off.yaml")
	writeTestFile(t, off, "api:\n  enabled: false\n")
	wrongKey := filepath.Join(dir, "wrong-key.yaml")
	writeTestFile(t, wrongKey, fmt.Sprintf("api:\n  url: %s\n  api_key: Wrong_Key_0123456789abcdef012345\n", srv.URL))
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	unreachable := filepath.Join(dir, "unreachable.yaml")
	writeTestFile(t, unreachable, fmt.Sprintf("api:\n  url: %s\n  api_key: %s\n", gone.URL, commandKey))

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", []string{"-config", cfg}, 2, "no command given"},
		{"unclosed quote", []string{"-config", cfg, "pause", "queue", `"x.example/*`}, 2, "double quote is not closed"},
		{"newline", []string{"-config", cfg, "pause", "queue", "x.example/*\nreload"}, 2, "line break"},
		{"escape", []string{"-config", cfg, "show", "\x1b[2Jstatus"}, 2, "control character"},
		{"bad flag", []string{"-bogus", "show", "status"}, 2, "flag provided but not defined"},
		{"API off", []string{"-config", off, "show", "status"}, 3, "api.enabled is false"},
		{"no such file", []string{"-config", filepath.Join(dir, "missing.yaml"), "show", "status"}, 3, "missing.yaml"},
		{"wrong key", []string{"-config", wrongKey, "show", "status"}, 1, "HTTP 403 Forbidden: PowerMTA did not let this host run commands"},
		{"unreachable", []string{"-config", unreachable, "show", "status"}, 1, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCommand(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) || out != "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tc.code, out, errOut, tc.stderr)
			}
			if strings.ContainsAny(errOut, "\x1b") {
				t.Errorf("stderr repeats an escape: %q", errOut)
			}
		})
	}
	if code, _, _ := runCommand(t, "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}
