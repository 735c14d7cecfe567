package selfmon

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pmta-agent/pmta-agent/agent"
)

// reporter is a hand-written fake StatsReporter.
type reporter struct {
	name   string
	fields []agent.Field
}

func (r reporter) Component() string    { return r.name }
func (r reporter) Stats() []agent.Field { return r.fields }

func noReporters() []agent.StatsReporter { return nil }

// scrape serves /metrics from h and parses it as Prometheus does.
func scrape(t *testing.T, h http.Handler) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d\n%s", rec.Code, rec.Body)
	}
	text := rec.Body.String()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v\n%s", err, text)
	}
	return text, fams
}

// sampleValue is the value of a parsed sample, whatever its type.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return m.Untyped.GetValue()
}

func TestMetricsParse(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reps := []agent.StatsReporter{
		reporter{"api", []agent.Field{{Key: "polls", Value: int64(7)}, {Key: "up", Value: int64(1)}, {Key: "last_duration_s", Value: 0.25},
			{Key: "last_success_unix", Value: now.Unix()}}},
		reporter{"sink_influx", []agent.Field{{Key: "queued_points", Value: int64(12)}, {Key: "errors", Value: int64(3)}, {Key: "note", Value: "text is skipped"}}},
	}
	latest := NewLatest()
	ts := now
	latest.Enqueue([]agent.Point{
		agent.NewPoint("pmta_status", []agent.Tag{{Key: "server", Value: `mta "01"\`}}, []agent.Field{{Key: "queue_rcp", Value: int64(84312)}, {Key: "queue_kb", Value: 4188302.5},
			{Key: "out_rcp_total", Value: int64(18342211)}, {Key: "uptime_s", Value: int64(285005)}, {Key: "spool_init_pct", Value: 100.0}}, ts),
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "server", Value: "m"}, {Key: "domain", Value: "gmail.com"}, {Key: "vmta", Value: ""}}, []agent.Field{{Key: "rcp", Value: int64(5)}, {Key: "kb", Value: 2.5}}, ts),
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "isp", Value: "google"}}, []agent.Field{{Key: "count", Value: int64(10)}, {Key: "bytes", Value: int64(1000)}, {Key: "interval_s", Value: int64(10)}}, ts),
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "isp", Value: "google"}}, []agent.Field{{Key: "count", Value: int64(5)}}, ts.Add(10*time.Second)),
	}, nil)
	s := New(Config{Version: "v1.2.3"}, func() []agent.StatsReporter { return reps }, latest, slog.New(slog.DiscardHandler))
	text, fams := scrape(t, s.Handler())
	value := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.Metric) == 0 {
			t.Fatalf("no %s in\n%s", name, text)
		}
		return sampleValue(f.Metric[0])
	}
	checks := map[string]float64{
		"pmta_agent_build_info":                     1,
		"pmta_agent_polls_total":                    7,
		"pmta_agent_up":                             1,
		"pmta_agent_last_duration_seconds":          0.25,
		"pmta_agent_last_success_timestamp_seconds": float64(now.Unix()),
		"pmta_agent_queued_points":                  12,
		"pmta_agent_errors_total":                   3,
		"pmta_status_queue_rcp":                     84312,
		"pmta_status_queue_bytes":                   4188302.5 * 1024,
		"pmta_status_out_rcp_total":                 18342211,
		"pmta_status_uptime_seconds":                285005,
		"pmta_status_spool_init_ratio":              1,
		"pmta_queue_rcp":                            5,
		"pmta_queue_bytes":                          2560,
		"pmta_acct_count_total":                     15,
		"pmta_acct_bytes_total":                     1000,
	}
	for name, want := range checks {
		if got := value(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if typ := fams["pmta_status_out_rcp_total"].GetType(); typ != dto.MetricType_COUNTER {
		t.Errorf("pmta_status_out_rcp_total is a %v, want a counter", typ)
	}
	if _, ok := fams["pmta_acct_interval_s_total"]; ok {
		t.Error("interval_s exported as a counter")
	}
	if got := fams["pmta_status_queue_rcp"].Metric[0].Label[0].GetValue(); got != "mta \"01\"\uFFFD" {
		t.Errorf("label round trip: %q (a trailing backslash becomes U+FFFD, as in every sink)", got)
	}
	for _, lp := range fams["pmta_queue_rcp"].Metric[0].Label {
		if lp.GetName() == "vmta" {
			t.Errorf("an empty tag became a label: %v", fams["pmta_queue_rcp"].Metric[0])
		}
	}
	build := fams["pmta_agent_build_info"].Metric[0]
	for _, lp := range build.Label {
		if lp.GetName() == "version" && lp.GetValue() != "v1.2.3" || lp.GetName() == "goversion" && lp.GetValue() != runtime.Version() {
			t.Errorf("build info label %s=%q", lp.GetName(), lp.GetValue())
		}
	}
}

// problemReporter also names its problems, as the accounting tailer does.
type problemReporter struct {
	reporter
	problems []string
}

func (p problemReporter) Problems() []string { return p.problems }

func TestReadiness(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := Config{APIStale: 3 * time.Minute, MaxTailLag: 5 * time.Minute, MaxSinkFailure: 5 * time.Minute}
	healthy := []agent.StatsReporter{
		reporter{"api", []agent.Field{{Key: "last_success_unix", Value: now.Add(-time.Minute).Unix()}}},
		reporter{"acct", []agent.Field{{Key: "tail_lag_s", Value: 3.0}}},
		reporter{"sink_influx", []agent.Field{{Key: "failing_since_unix", Value: int64(0)}}},
		reporter{"sink_otlp", []agent.Field{{Key: "failing_since_unix", Value: now.Add(-time.Minute).Unix()}}},
	}
	if p := Readiness(now, cfg, healthy); len(p) != 0 {
		t.Errorf("healthy: %v", p)
	}
	idle := reporter{"acct", []agent.Field{{Key: "tail_lag_s", Value: 3600.0}, {Key: "tail_lag_bytes", Value: int64(0)}}}
	if p := Readiness(now, cfg, []agent.StatsReporter{idle}); len(p) != 0 {
		t.Errorf("an idle PowerMTA (nothing unread, newest record an hour old) is not a lag: %v", p)
	}
	cases := []struct {
		name string
		rep  agent.StatsReporter
		want string
	}{
		{"no poll yet", reporter{"api", []agent.Field{{Key: "last_success_unix", Value: int64(0)}}}, "api: no successful poll yet"},
		{"stale poll", reporter{"api", []agent.Field{{Key: "last_success_unix", Value: now.Add(-4 * time.Minute).Unix()}}}, "api: last successful poll 4m0s ago"},
		{"tail lag", reporter{"acct", []agent.Field{{Key: "tail_lag_s", Value: 400.0}, {Key: "tail_lag_bytes", Value: int64(5000)}}}, "acct: tail lag 6m40s"},
		{"sink failing", reporter{"sink_influx", []agent.Field{{Key: "failing_since_unix", Value: now.Add(-6 * time.Minute).Unix()}}}, "sink_influx: failing for 6m0s"},
		{"unreadable directory", problemReporter{reporter{"acct", nil}, []string{"acct: cannot read directory /var/log/pmta: permission denied"}},
			"acct: cannot read directory /var/log/pmta"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Readiness(now, cfg, []agent.StatsReporter{c.rep})
			if len(p) != 1 || !strings.HasPrefix(p[0], c.want) {
				t.Errorf("got %v, want %q", p, c.want)
			}
		})
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	last := time.Now().Unix()
	rep := &reporter{"api", []agent.Field{{Key: "last_success_unix", Value: last}}}
	s := New(Config{APIStale: time.Minute}, func() []agent.StatsReporter { return []agent.StatsReporter{*rep} }, nil, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: not JSON: %s", path, body)
		}
		return resp.StatusCode, m
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, m := get("/readyz"); code != 200 || m["status"] != "ready" {
		t.Errorf("/readyz %d %v", code, m)
	}
	rep.fields[0].Value = time.Now().Add(-time.Hour).Unix()
	if code, m := get("/readyz"); code != 503 || !strings.Contains(m["problems"].([]any)[0].(string), "api: last successful poll") {
		t.Errorf("/readyz %d %v", code, m)
	}
}
