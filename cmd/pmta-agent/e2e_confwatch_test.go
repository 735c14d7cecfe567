package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// On a PowerMTA host the agent follows PowerMTA's configuration: an edit to
// it (a rate raised, a secret changed) becomes pmta_event points of kind
// config_change, in PowerMTA's terms and with the secret masked.
func TestPowerMTAConfigChangesAreEvents(t *testing.T) {
	s := sim.New(sim.Options{Seed: 9, Rate: -1})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	u, _ := url.Parse(api.URL)
	dir := t.TempDir()
	pmtaConf := filepath.Join(dir, "pmta-config")
	conf := func(rate, key string) string {
		return fmt.Sprintf("http-mgmt-port %s\nhttp-access 127.0.0.1 admin\nhttp-api-key %s\n<domain gmail.com>\n  max-msg-rate %s\n</domain>\n", u.Port(), key, rate)
	}
	writeTestFile(t, pmtaConf, conf("250/h", "first-secret-key-0123456789"))
	agentConf := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, agentConf, fmt.Sprintf(`server: watch-mta
state_dir: %s
self_interval: 1h
listen: {enabled: false}
api: {interval: 1h}
pmta: {config: %s, watch_interval: 200ms}
sinks: {stdout: {enabled: true}}
`, filepath.Join(dir, "state"), pmtaConf))
	cfg, err := loadConfig(agentConf)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, out, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, 20*time.Second, "the first poll", func() bool { return strings.Contains(out.String(), "pmta_status,") })
	writeTestFile(t, pmtaConf, conf("500/h", "second-secret-key-0123456789"))
	waitUntil(t, 20*time.Second, "two config_change events", func() bool { return strings.Count(out.String(), "kind=config_change") >= 2 })
	events := grepLines(out.String(), "kind=config_change")
	for _, want := range []string{`change="<domain gmail.com> max-msg-rate 250/h → 500/h"`, `change="http-api-key ***** → *****"`, "server=watch-mta"} {
		if !strings.Contains(events, want) {
			t.Errorf("no %s in:\n%s", want, events)
		}
	}
	if strings.Contains(out.String(), "secret-key") {
		t.Errorf("a PowerMTA secret in the output:\n%s", events)
	}
}
