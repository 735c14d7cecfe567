package otlp

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestMetricName(t *testing.T) {
	cases := [][3]string{
		{"pmta_status", "queue_rcp", "pmta.status.queue_rcp"},
		{"pmta_acct", "count", "pmta.acct.count"},
		{"pmta_acct_diag", "count", "pmta.acct_diag.count"},
		{"pmta_agent", "errors", "pmta.agent.errors"},
		{"custom", "x", "pmta.custom.x"},
	}
	for _, c := range cases {
		if got := metricName(c[0], c[1]); got != c[2] {
			t.Errorf("metricName(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

func TestUnitFor(t *testing.T) {
	cases := []struct{ meas, field, unit string }{
		{"pmta_status", "queue_rcp", "{recipient}"},
		{"pmta_status", "out_rcp_last_min", "{recipient}"},
		{"pmta_status", "queue_kb", "KiBy"},
		{"pmta_status", "in_kb_total", "KiBy"},
		{"pmta_status", "uptime_s", "s"},
		{"pmta_status", "conn_out_max", "{connection}"},
		{"pmta_status", "conn_active", "{connection}"},
		{"pmta_status", "up", "1"},
		{"pmta_status", "shutting_down", "1"},
		{"pmta_status", "out_rcp_per_sec", "{recipient}/s"},
		{"pmta_status", "out_kb_per_sec", "KiBy/s"},
		{"pmta_status", "spool_init_pct", "%"},
		{"pmta_status", "spool_files_in_use", "{file}"},
		{"pmta_status", "out_msg_total", "{message}"},
		{"pmta_status", "resolver_pending", "1"},
		{"pmta_queue", "paused", "1"},
		{"pmta_queue", "backoff", "1"},
		{"pmta_vmta", "msgs_per_sec", "{message}/s"},
		{"pmta_vmta", "domains", "{domain}"},
		{"pmta_acct", "count", "{record}"},
		{"pmta_acct", "bytes", "By"},
		{"pmta_acct", "queued_s_sum", "s"},
		{"pmta_acct", "queued_s_max", "s"},
		{"pmta_acct_diag", "count", "{record}"},
		{"pmta_agent", "last_success_unix", "s"},
		{"pmta_agent", "queued_bytes", "By"},
		{"pmta_agent", "errors", "{error}"},
		{"pmta_agent", "count", "1"},
	}
	for _, c := range cases {
		if got := unitFor(c.meas, c.field); got != c.unit {
			t.Errorf("unitFor(%s, %s) = %q, want %q", c.meas, c.field, got, c.unit)
		}
	}
}

func TestFieldRole(t *testing.T) {
	cases := []struct {
		meas, field string
		role        role
	}{
		{"pmta_acct", "count", roleAcctSum},
		{"pmta_acct", "bytes", roleAcctSum},
		{"pmta_acct", "queued_s_sum", roleAcctSum},
		{"pmta_acct", "queued_s_max", roleGauge},
		{"pmta_acct", "interval_s", roleSkip},
		{"pmta_acct_diag", "count", roleAcctSum},
		{"pmta_acct_diag", "interval_s", roleSkip},
		{"pmta_acct_domain", "count", roleAcctSum},
		{"pmta_acct_full", "queued_s_sum", roleAcctSum},
		{"pmta_acct_domain", "interval_s", roleSkip},
		{"pmta_acctx", "count", roleGauge},
		{"pmta_status", "out_rcp_total", roleTotal},
		{"pmta_status", "interval_s", roleGauge},
		{"pmta_status", "queue_rcp", roleGauge},
		{"pmta_agent", "points_total", roleGauge},
		{"pmta_domain", "count", roleGauge},
	}
	for _, c := range cases {
		if got := fieldRole(c.meas, c.field); got != c.role {
			t.Errorf("fieldRole(%s, %s) = %d, want %d", c.meas, c.field, got, c.role)
		}
	}
}

func TestRunsByServer(t *testing.T) {
	mk := func(server string) agent.Point {
		return agent.NewPoint("pmta_status", tags("server", server), fields("up", int64(1)), t0)
	}
	pts := []agent.Point{mk("a"), mk("a"), mk("b"), mk(""), mk(""), mk("a")}
	got := runsByServer(pts)
	want := []run{{"a", 0, 2}, {"b", 2, 3}, {"", 3, 5}, {"a", 5, 6}}
	if len(got) != len(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("run %d: %v, want %v", i, got[i], want[i])
		}
	}
	if runsByServer(nil) != nil {
		t.Error("runs of no points")
	}
}

func TestNewResource(t *testing.T) {
	attrs := func(server, version string, extra map[string]string) map[string]string {
		m := map[string]string{}
		for _, kv := range newResource(server, version, extra).Attributes() {
			m[string(kv.Key)] = kv.Value.AsString()
		}
		return m
	}
	got := attrs("mx1", "1.0", map[string]string{"service.name": "pmta-eu", "host.name": "ignored", "region": "eu"})
	want := map[string]string{"service.name": "pmta-eu", "service.version": "1.0", "host.name": "mx1", "region": "eu"}
	if len(got) != len(want) {
		t.Fatalf("resource %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (%v)", k, got[k], v, got)
		}
	}
	// Without a server tag, an operator's host.name stays; no version, no
	// service.version.
	got = attrs("", "", map[string]string{"host.name": "static"})
	if got["host.name"] != "static" || got["service.name"] != "pmta-agent" || len(got) != 2 {
		t.Errorf("resource without server: %v", got)
	}
}

func TestSeriesKey(t *testing.T) {
	key := func(kv ...string) string {
		attrs := attributesOf(tags(kv...))
		return seriesKey("m", &attrs)
	}
	a := key("a", "x", "b", "")
	b := key("a", "x")
	c := key("a", `x",b="y`)
	d := key("a", "x", "b", "y")
	if a != b {
		t.Errorf("empty tag changed the key: %s vs %s", a, b)
	}
	if c == d {
		t.Errorf("quoting does not separate %s", c)
	}
	// The format of state files written before the attributes were
	// sanitized: a clean tag set keeps its key.
	if want := `m{a="x",b="y"}`; d != want {
		t.Errorf("key %s, want %s", d, want)
	}
	// Values that sanitize alike are one series at the collector, so they
	// share one running total.
	if e, f := key("domain", "caf\xe9.com"), key("domain", "caf\xe8.com"); e != f || e != key("domain", "caf\uFFFD.com") {
		t.Errorf("sanitized twins have different keys: %s, %s", e, f)
	}
}

// TestBuildRequestValues checks conversions that the collector tests do not
// reach: bools, strings, a float interval, a point without interval_s.
func TestBuildRequestValues(t *testing.T) {
	pts := []agent.Point{
		agent.NewPoint("pmta_queue", tags("server", "s"), fields("paused", true, "note", "text"), t0),
		agent.NewPoint("pmta_acct", tags("server", "s"), fields("count", int64(3)), t0),
		agent.NewPoint("pmta_acct_diag", tags("server", "s"), fields("count", int64(4), "interval_s", 30.0), t0),
		agent.NewPoint("pmta_status", tags("server", "s"), fields("out_rcp_total", int64(9)), t0),
	}
	r := buildRequest(pts, nil)
	if r.dataPoints != 4 || r.unsupported != 1 {
		t.Fatalf("data points %d unsupported %d, want 4 and 1", r.dataPoints, r.unsupported)
	}
	paused := r.metrics[metricKey{name: "pmta.queue.paused"}]
	if paused == nil || paused.ints[0].Value != 1 {
		t.Errorf("bool true is not int 1: %+v", paused)
	}
	acct := r.metrics[metricKey{name: "pmta.acct.count"}].ints[0]
	if !acct.StartTime.Equal(t0) || !acct.Time.Equal(t0.Add(defaultInterval)) {
		t.Errorf("acct without interval_s: %v..%v", acct.StartTime, acct.Time)
	}
	diag := r.metrics[metricKey{name: "pmta.acct_diag.count"}].ints[0]
	if !diag.Time.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("diag with a float interval: ends %v", diag.Time)
	}
	total := r.metrics[metricKey{name: "pmta.status.out_rcp_total"}]
	if !total.ints[0].StartTime.IsZero() {
		t.Errorf("a total without uptime_s has a start time %v", total.ints[0].StartTime)
	}
	rm := r.resourceMetrics(newResource("s", "", nil), instrumentation.Scope{Name: scopeName})
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == "pmta.status.out_rcp_total" {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || sum.Temporality != metricdata.CumulativeTemporality || !sum.IsMonotonic {
				t.Errorf("total: %#v", m.Data)
			}
		}
	}
}
