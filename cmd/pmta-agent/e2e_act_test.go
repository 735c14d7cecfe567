package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/relay"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

const relayToken = "e2e-relay-token-0123456789abcdef0123456789"

// tool returns the path of a program the test needs: skipped without it,
// failed without it in CI (.ci/run installs it).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// actAgent starts an agent against s whose accounting files w writes, with
// the relay on and Alertmanager's rule for the per-ISP deferral alert; it
// returns the listener's address and the agent's output (pmta_event lines).
func actAgent(t *testing.T, s *sim.Sim, logs string, dryRun bool) (string, *syncBuffer) {
	t.Helper()
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "relay.tokens")
	if err := os.WriteFile(tokens, []byte("alertmanager "+relayToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Server, cfg.StateDir = "act-mta", filepath.Join(dir, "state")
	cfg.SelfInterval = time.Hour
	cfg.API.URL, cfg.API.Interval, cfg.API.Timeout, cfg.API.Jitter = api.URL, time.Second, time.Second, 0
	cfg.Listen.Address, cfg.Listen.PMTAMetrics = freeAddr(t), true
	cfg.Acct.Enabled, cfg.Acct.StartAt, cfg.Acct.Globs = true, "beginning", []string{filepath.Join(logs, "*.csv")}
	cfg.Acct.PollEvery, cfg.Acct.Interval, cfg.Acct.Grace = 100*time.Millisecond, time.Second, 100*time.Millisecond
	cfg.Relay.Enabled, cfg.Relay.TokensFile = true, tokens
	cfg.Relay.Alertmanager = relay.AlertConfig{Enabled: true, DryRun: dryRun, Cooldown: 0, MaxActionsPerHour: 100,
		Rules: []relay.AlertRule{{Alert: "PmtaIspDeferralHigh", Labels: map[string]string{"severity": "critical"},
			Firing: "pause queue {domains:isp}/*", Resolved: "resume queue {domains:isp}/*"}}}
	cfg.Sinks.Stdout.Enabled, cfg.Sinks.Stdout.Buffer = true, engine.MemoryBuffer()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, out, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	waitUntil(t, 20*time.Second, "the agent's listener", func() bool {
		resp, err := http.Get("http://" + cfg.Listen.Address + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return cfg.Listen.Address, out
}

// startProcess runs a server for the test's life.
func startProcess(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log (end):\n%s", name, tail(b, 3000))
		}
		logf.Close()
	})
}

// paused returns the names of the simulator's paused queues of domains.
func paused(s *sim.Sim, domains ...string) (paused, all int) {
	for _, q := range s.Snapshot().Queues {
		for _, d := range domains {
			if strings.HasPrefix(q.Name, d+"/") {
				all++
				if q.Paused {
					paused++
				}
			}
		}
	}
	return paused, all
}

// The whole loop with the real Prometheus and Alertmanager: the simulator
// defers 40 % at one ISP; Prometheus, scraping the agent, fires the
// per-ISP deferral rule of deploy/prometheus (its windows shortened from
// minutes to seconds); Alertmanager posts to the agent's relay, which
// pauses that ISP's queues in the simulator and records a pmta_event; the
// simulator recovers, the alert resolves, and the queues are resumed.
func TestAlertPausesAndResumesAnISP(t *testing.T) {
	prom, am := tool(t, "prometheus"), tool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	logs := filepath.Join(dir, "log")
	s := sim.New(sim.Options{Seed: 21, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				_ = w.Write(60, time.Now())
			}
		}
	}()
	defer func() { close(stop); <-writerDone }()
	s.SetDeferralRate("google", 0.4)
	agentAddr, out := actAgent(t, s, logs, false)

	// The rules as shipped, their windows in seconds.
	rules, err := os.ReadFile("../../deploy/prometheus/pmta-agent.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	fast := regexp.MustCompile(`\[(15m|5m|10m|1h)\]`).ReplaceAllString(string(rules), "[20s]")
	fast = regexp.MustCompile(`(?m)^(\s+for:) \S+`).ReplaceAllString(fast, "$1 1s")
	fast = regexp.MustCompile(`(?m)^(\s+interval:) \S+`).ReplaceAllString(fast, "$1 1s")
	writeTestFile(t, filepath.Join(dir, "rules.yml"), fast)
	amAddr, promAddr := freeAddr(t), freeAddr(t)
	writeTestFile(t, filepath.Join(dir, "token"), relayToken+"\n")
	writeTestFile(t, filepath.Join(dir, "alertmanager.yml"), fmt.Sprintf(`route:
  receiver: relay
  group_by: [alertname, server, isp]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: relay
    webhook_configs:
      - url: http://%s/v1/alertmanager
        send_resolved: true
        http_config:
          authorization: {credentials_file: %s}
`, agentAddr, filepath.Join(dir, "token")))
	writeTestFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: pmta-agent
    static_configs: [{targets: [%q]}]
`, filepath.Join(dir, "rules.yml"), amAddr, agentAddr))
	startProcess(t, am, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	startProcess(t, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+promAddr, "--rules.alert.resend-delay=1s")

	google := []string{"gmail.com", "googlemail.com"}
	start := time.Now()
	waitUntil(t, 120*time.Second, "google's queues paused by the alert", func() bool {
		p, all := paused(s, google...)
		return all > 0 && p == all
	})
	if !strings.Contains(out.String(), "pmta_event,") || !regexp.MustCompile(`pmta_event,.*kind=alertmanager,.*result=sent,.*verb=pause\\ queue .*target="gmail.com/\*"`).MatchString(out.String()) {
		t.Errorf("no pmta_event of the pause:\n%s", grepLines(out.String(), "pmta_event"))
	}

	t.Logf("paused %s after the start", time.Since(start).Round(time.Second))
	start = time.Now()
	s.SetDeferralRate("google", 0) // recovered
	waitUntil(t, 180*time.Second, "google's queues resumed once the alert resolved", func() bool {
		p, all := paused(s, google...)
		return all > 0 && p == 0
	})
	t.Logf("resumed %s after the recovery", time.Since(start).Round(time.Second))
	if !regexp.MustCompile(`pmta_event,.*result=sent,.*verb=resume\\ queue`).MatchString(out.String()) {
		t.Errorf("no pmta_event of the resume:\n%s", grepLines(out.String(), "pmta_event"))
	}
}

// The relay's failure cases against the simulator: a wrong token, a verb
// not allowed, PowerMTA refusing, PowerMTA down — each answered, audited,
// nothing else sent.
func TestRelayRefusals(t *testing.T) {
	dir := t.TempDir()
	s := sim.New(sim.Options{Seed: 22, Rate: -1})
	addr, out := actAgent(t, s, filepath.Join(dir, "none"), false)
	post := func(token, line string) (int, string) {
		b, _ := json.Marshal(map[string]string{"command": line})
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/command", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		status, _ := body["status"].(string)
		return resp.StatusCode, status
	}
	pausedSet := func() string {
		var names []string
		for _, q := range s.Snapshot().Queues {
			if q.Paused {
				names = append(names, q.Name)
			}
		}
		return strings.Join(names, " ")
	}
	before := pausedSet()
	for _, tc := range []struct {
		name, token, line string
		code              int
		status            string
	}{
		{"wrong token", relayToken + "x", "pause queue gmail.com/*", 401, "refused"},
		{"verb not allowed", relayToken, "delete --queue=gmail.com/*", 403, "refused"},
		{"PowerMTA refuses", relayToken, "pause queue no-such-domain.example/*", 422, "refused_by_pmta"},
	} {
		if code, status := post(tc.token, tc.line); code != tc.code || status != tc.status {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, status, tc.code, tc.status)
		}
	}
	s.SetFaults(sim.Faults{Down: true})
	if code, status := post(relayToken, "pause queue gmail.com/*"); code != 502 || status != "failed" {
		t.Errorf("PowerMTA down: %d %s, want 502 failed", code, status)
	}
	s.SetFaults(sim.Faults{})
	if got := pausedSet(); got != before {
		t.Errorf("refused requests changed the paused queues: %q, before %q", got, before)
	}
	// And the allowed one works.
	if code, status := post(relayToken, "pause queue gmail.com/*"); code != 200 || status != "sent" {
		t.Errorf("allowed: %d %s", code, status)
	}
	waitUntil(t, 20*time.Second, "five pmta_event points", func() bool { return strings.Count(out.String(), "pmta_event,") >= 5 })
	events := grepLines(out.String(), "pmta_event")
	for _, want := range []string{"result=refused,server=act-mta,token=- ", "result=refused,server=act-mta,token=alertmanager,verb=other ",
		"result=refused_by_pmta,", "result=failed,", "result=sent,"} {
		if !strings.Contains(events, want) {
			t.Errorf("no pmta_event with %s:\n%s", want, events)
		}
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
