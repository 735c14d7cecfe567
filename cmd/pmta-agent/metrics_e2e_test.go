package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// TestEveryWiredFieldDescribed runs an agent with every component wired —
// the poller, the accounting tailer, the pipeline, the stdout, InfluxDB and
// OTLP sinks (a disk queue and memory buffers), the OTLP sink's own stats —
// against the simulator, with listen.pmta_metrics on, and reads /metrics:
// every family has a description of its own (a field a component reports,
// or PowerMTA sends, without one in selfmon's names.go is served under
// "Not described yet" and fails here), the agent logged no /metrics
// problem, and promtool check metrics finds nothing to say.
func TestEveryWiredFieldDescribed(t *testing.T) {
	s := sim.New(sim.Options{Seed: 5, Rate: 500})
	api := httptest.NewServer(s.Handler())
	defer api.Close()

	logs := t.TempDir()
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, SplitDiag: true})
	if err != nil {
		t.Fatal(err)
	}
	// Records a minute old: their intervals close at once.
	if err := w.Write(500, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	influx := influxtest.Start(t)
	influx.CreateDatabase("pmta_metrics")
	cfg := e2eConfig(t, api.URL, "pmta", "json", influx.URL, "pmta_metrics")
	cfg.API.Interval = 500 * time.Millisecond
	cfg.API.Timeout = 400 * time.Millisecond
	cfg.SelfInterval = 200 * time.Millisecond
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.Listen.Address = freeAddr(t)
	cfg.Listen.PMTAMetrics = true
	cfg.Acct.Enabled = true
	cfg.Acct.StartAt = "beginning"
	cfg.Acct.PollEvery = 100 * time.Millisecond
	cfg.Acct.Interval = 5 * time.Second
	cfg.Acct.Globs = []string{filepath.Join(logs, "*.csv")}
	cfg.Sinks.Stdout.Enabled = true
	cfg.Sinks.OTLP.Enabled = true
	cfg.Sinks.OTLP.Protocol = "http"
	cfg.Sinks.OTLP.Endpoint = "http://" + freeAddr(t) // nothing listens: its errors are counted
	cfg.Sinks.OTLP.Buffer = config.Default().Sinks.Stdout.Buffer
	// The watcher of PowerMTA's configuration, as on a PowerMTA host.
	pmtaConf := filepath.Join(t.TempDir(), "pmta-config")
	writeTestFile(t, pmtaConf, "http-mgmt-port 8080\n")
	cfg.PMTA.Config, cfg.PMTA.WatchInterval = pmtaConf, 100*time.Millisecond
	cfg.Derived = &config.Derivation{File: pmtaConf}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := logtest.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, io.Discard, rec.Logger()) }()
	defer func() {
		cancel()
		<-done
	}()

	var text string
	var fams map[string]*dto.MetricFamily
	waitFor(t, "PowerMTA's queues and the accounting counters on /metrics", func() bool {
		text, fams = getMetrics(t, cfg.Listen.Address)
		return fams["pmta_queue_rcp"] != nil && fams["pmta_acct_count_total"] != nil && fams["pmta_agent_written_points_total"] != nil
	})
	components := map[string]bool{}
	for name, f := range fams {
		if strings.HasPrefix(f.GetHelp(), "Not described yet") {
			t.Errorf("%s has no description in agent/selfmon/names.go: %s", name, f.GetHelp())
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "component" && strings.HasPrefix(name, "pmta_agent_") {
					components[lp.GetValue()] = true
				}
			}
		}
	}
	for _, c := range []string{"api", "acct", "pipeline", "sink_stdout", "sink_influx", "sink_otlp", "otlp_export", "pmta_config"} {
		if !components[c] {
			t.Errorf("no component %s on /metrics", c)
		}
	}
	for _, r := range rec.Records() {
		if strings.Contains(r.Msg, "/metrics") {
			t.Errorf("logged: %s", r)
		}
	}
	tool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: CI installs Debian's prometheus package for it")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// getMetrics reads and parses the agent's /metrics (nothing while it is
// not up yet).
func getMetrics(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", nil
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v\n%s", err, body)
	}
	return string(body), fams
}
