package selfmon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/agent/poller"
)

// componentFields are the fields each component of a wired agent reports
// (TestEveryWiredFieldDescribed in cmd/pmta-agent checks the real ones):
// a sink with a disk queue, one with a memory buffer, the OTLP sink's own.
var componentFields = map[string][]string{
	"api": {"polls", "errors", "last_success_unix", "last_duration_s", "up", "pmta_restarts", "rows_skipped", "fields_missing"},
	"acct": {"lines_read", "records_read", "records", "records_restored", "records_emitted", "records_open", "malformed",
		"out_of_range", "out_of_range_future", "out_of_range_old", "out_of_range_invalid", "late", "files_open", "files_done",
		"truncations", "files_held_as_copies", "bytes_read", "tail_lag_bytes", "tail_lag_s", "diag_folded",
		"last_checkpoint_unix", "last_commit_unix", "pending_cuts", "checkpoint_corrupt", "checkpoint_errors", "read_errors", "problems",
		"verdict_points", "verdict_ip_specific", "verdict_pool_wide", "verdict_dropped_attempts"},
	"pipeline": {"batches", "points", "domains_folded", "vmtas_folded", "pools_folded", "source_ips_folded",
		"bounce_cats_folded", "diags_folded", "values_sanitized", "points_merged"},
	"sink_influx": {"queued_points", "queued_entries", "queued_bytes", "recovered_points", "enqueued_points", "written_points",
		"dropped_rejected", "dead_lettered_points", "dropped_points", "errors", "append_errors", "retained_entries",
		"dropped_unstored", "splits", "last_success_unix", "failing_since_unix", "write_duration_s",
		"dropped_entries", "dropped_first_unix", "dropped_last_unix", "quarantined_files", "sync_errors", "write_errors", "read_errors"},
	"sink_otlp": {"queued_points", "queued_entries", "queued_bytes", "recovered_points", "enqueued_points", "written_points",
		"dropped_rejected", "dead_lettered_points", "dropped_points", "errors", "append_errors", "retained_entries",
		"dropped_unstored", "splits", "last_success_unix", "failing_since_unix", "write_duration_s",
		"dropped_entries", "dropped_first_unix", "dropped_last_unix"},
	"otlp_export": {"data_points", "replays_skipped", "fields_unsupported", "state_errors", "rejected_data_points"},
	"pmta_config": {"checks", "changes", "events_folded", "errors", "files", "last_check_unix", "last_change_unix", "last_error_unix",
		"impact_runs", "impact_errors", "impact_pending", "impact_last_run_unix"},
}

// busyReporters report every field of componentFields with a value that is
// not zero: times for the timestamps, fractions for the durations.
func busyReporters(now time.Time) []agent.StatsReporter {
	var reps []agent.StatsReporter
	comps := make([]string, 0, len(componentFields))
	for c := range componentFields {
		comps = append(comps, c)
	}
	slices.Sort(comps)
	for _, c := range comps {
		r := reporter{name: c}
		for i, k := range componentFields[c] {
			var v any = int64(1000*len(c) + i + 1)
			switch {
			case strings.HasSuffix(k, "_unix"):
				v = now.Add(-time.Duration(i) * time.Minute).Unix()
			case strings.HasSuffix(k, "_s"):
				v = 0.125 * float64(i+1)
			}
			r.fields = append(r.fields, agent.Field{Key: k, Value: v})
		}
		reps = append(reps, r)
	}
	return reps
}

// serveDocs serves recorded PowerMTA documents from dir as the poller's
// tests do: /queues?format=json is queues.json, /queue.csv is queue.csv.
func serveDocs(t *testing.T, dir string) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := path.Base(r.URL.Path)
		if path.Ext(name) == "" {
			name += "." + r.URL.Query().Get("format")
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// pollInto runs one round of a real poller against the recorded documents
// of ../poller/testdata/<docs> and sends it through a pipeline into l, as
// the agent does.
func pollInto(t *testing.T, l *Latest, docs, dialect, format string, extra ...agent.Point) {
	t.Helper()
	cfg := poller.DefaultConfig()
	cfg.URL, cfg.Dialect, cfg.Format = serveDocs(t, filepath.Join("..", "poller", "testdata", docs)), dialect, format
	p, err := poller.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b, err := p.Gather(context.Background())
	if err != nil {
		t.Fatalf("poll %s: %v", docs, err)
	}
	pl := engine.NewPipeline(engine.PipelineConfig{Server: "mta01.example.com", Tags: map[string]string{"dc": "fra1"}}, l)
	pl.Emit(b)
	if len(extra) > 0 {
		pl.Emit(agent.Batch{Points: extra})
	}
}

// busyLatest is Latest after a poll of the recorded documents, the rates a
// second poll adds, and the accounting counters of a few intervals.
func busyLatest(t *testing.T, docs, dialect, format string, now time.Time) *Latest {
	t.Helper()
	l := NewLatest()
	status := []agent.Tag{{Key: "server", Value: "mta01.example.com"}}
	rates := agent.NewPoint("pmta_status", status, []agent.Field{{Key: "out_rcp_per_sec", Value: 116.9},
		{Key: "in_rcp_per_sec", Value: 113.2}, {Key: "out_kb_per_sec", Value: 5812.5}, {Key: "in_msg_per_sec", Value: 2.5}}, now)
	var acct []agent.Point
	for i, isp := range []string{"google", "microsoft", "yahoo", "other"} {
		for _, typ := range []string{"d", "b", "t"} {
			tags := []agent.Tag{{Key: "type", Value: typ}, {Key: "isp", Value: isp}, {Key: "vmta", Value: fmt.Sprintf("vmta-%02d", i)},
				{Key: "pool", Value: "pool-a"}, {Key: "source_ip", Value: fmt.Sprintf("192.0.2.%d", i+1)}}
			acct = append(acct, agent.NewPoint("pmta_acct", tags, []agent.Field{{Key: "count", Value: int64(100 * (i + 1))},
				{Key: "bytes", Value: int64(51200 * (i + 1))}, {Key: "queued_s_sum", Value: int64(30)}, {Key: "interval_s", Value: int64(60)}}, now))
			if typ != "d" {
				acct = append(acct, agent.NewPoint("pmta_acct_diag", []agent.Tag{{Key: "type", Value: typ}, {Key: "isp", Value: isp},
					{Key: "diag", Value: `550 5.1.1 <*>: "user unknown"`}}, []agent.Field{{Key: "count", Value: int64(i + 1)}}, now))
			}
		}
	}
	pollInto(t, l, docs, dialect, format, append(acct, rates)...)
	return l
}

// promtool returns the path of promtool, from Debian's prometheus package;
// without it the test is skipped, except in CI, which installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: CI installs Debian's prometheus package for it")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return p
}

// TestMetricsPromtool: promtool check metrics — Prometheus's own linter —
// finds nothing to say about /metrics of a busy agent: every component's
// every field with a value, PowerMTA's values from each dialect's recorded
// documents, the accounting counters, the Go and process collectors.
func TestMetricsPromtool(t *testing.T) {
	tool := promtool(t)
	now := time.Now()
	for _, c := range []struct{ docs, dialect, format string }{
		{"pmta-json", "pmta", "json"}, {"pmta-xml", "pmta", "xml"}, {"pmta-quirks", "pmta", "json"},
		{"seed", "seed", "json"}, {"seed-headerless", "seed", "json"},
	} {
		t.Run(c.docs, func(t *testing.T) {
			l := busyLatest(t, c.docs, c.dialect, c.format, now)
			s := New(Config{Version: "v1.2.3"}, func() []agent.StatsReporter { return busyReporters(now) }, l, slog.New(slog.DiscardHandler))
			text, fams := scrape(t, s.Handler())
			for name, f := range fams {
				if strings.HasPrefix(f.GetHelp(), "Not described yet") {
					t.Errorf("%s: %s", name, f.GetHelp())
				}
			}
			cmd := exec.Command(tool, "check", "metrics")
			cmd.Stdin = strings.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}

// TestMetricsExposition checks, without promtool, what promtool would and
// more: every family has a HELP of its own, none appears twice, counters
// and only counters end in _total, the Go and process collectors are
// there, every described field shows up, and the units are base units.
func TestMetricsExposition(t *testing.T) {
	now := time.Now()
	l := busyLatest(t, "pmta-json", "pmta", "json", now)
	s := New(Config{Version: "v1.2.3"}, func() []agent.StatsReporter { return busyReporters(now) }, l, slog.New(slog.DiscardHandler))
	text, fams := scrape(t, s.Handler())

	seen := map[string]int{}
	for line := range strings.Lines(text) {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			seen[strings.Fields(name)[0]]++
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("family %s appears %d times", name, n)
		}
	}
	for name, f := range fams {
		if f.GetHelp() == "" || strings.HasPrefix(f.GetHelp(), "Not described yet") {
			t.Errorf("%s: no HELP of its own (%q)", name, f.GetHelp())
		}
		total := strings.HasSuffix(name, "_total")
		if counter := f.GetType() == dto.MetricType_COUNTER; counter != total {
			t.Errorf("%s is a %v: counters, and only they, end in _total", name, f.GetType())
		}
		if strings.HasPrefix(name, "pmta_") {
			for _, part := range strings.Split(name, "_") {
				if slices.Contains([]string{"s", "kb", "sec", "unix", "pct", "ms"}, part) {
					t.Errorf("%s: %q is no base unit", name, part)
				}
			}
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_cpu_seconds_total", "pmta_agent_build_info"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	for field, f := range selfFamilies {
		if _, ok := fams["pmta_agent_"+f.name]; !ok {
			t.Errorf("field %s: no pmta_agent_%s", field, f.name)
		}
	}
	for _, name := range []string{"pmta_status_queue_bytes", "pmta_status_out_bytes_total", "pmta_status_uptime_seconds",
		"pmta_status_out_bytes_per_second", "pmta_queue_bytes", "pmta_domain_bytes", "pmta_vmta_bytes",
		"pmta_acct_count_total", "pmta_acct_bytes_total", "pmta_acct_diag_count_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	// From testdata/pmta-json: yahoo.com's queue is 912455.3 KBytes.
	for _, m := range fams["pmta_queue_bytes"].GetMetric() {
		if labelValue(m, "domain") == "yahoo.com" {
			if got, want := sampleValue(m), 912455.3*1024; math.Abs(got-want) > 1e-6*want {
				t.Errorf("pmta_queue_bytes{domain=yahoo.com} = %v, want %v", got, want)
			}
			if labelValue(m, "dc") != "fra1" || labelValue(m, "server") != "mta01.example.com" || labelValue(m, "isp") == "" {
				t.Errorf("labels of the pipeline's tags missing: %v", m.GetLabel())
			}
		}
	}
}

// TestFamilyTables: the names are unique and well formed, counters end in
// _total and nothing else does, every one has a help.
func TestFamilyTables(t *testing.T) {
	names := map[string]string{}
	check := func(what string, f family) {
		full := f.name
		if _, ok := selfFamilies[what]; ok {
			full = "pmta_agent_" + f.name
		}
		if prev, dup := names[full]; dup {
			t.Errorf("%s and %s are both %s", prev, what, full)
		}
		names[full] = what
		if sanitize(full) != full {
			t.Errorf("%s: %q is not a metric name", what, full)
		}
		if strings.HasSuffix(full, "_total") != f.counter {
			t.Errorf("%s: %s, counter %v", what, full, f.counter)
		}
		if f.help == "" || strings.Contains(f.help, "\n") {
			t.Errorf("%s: help %q", what, f.help)
		}
	}
	for k, f := range selfFamilies {
		check(k, f)
	}
	for k, f := range pmtaFamilies {
		check(k.measurement+"."+k.field, f)
	}
	var listed []string
	for _, fields := range componentFields {
		listed = append(listed, fields...)
	}
	for k := range selfFamilies {
		if !slices.Contains(listed, k) {
			t.Errorf("field %s is described but no component of componentFields reports it", k)
		}
	}
	for _, k := range listed {
		if _, ok := selfFamilies[k]; !ok {
			t.Errorf("field %s is reported but not described", k)
		}
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// TestMetricsHostileLabels: what PowerMTA (or what answers in its place)
// names its queues cannot break /metrics: invalid UTF-8, quotes, newlines,
// backslashes, a very long name — given to Latest directly, without the
// pipeline that cleans them first.
func TestMetricsHostileLabels(t *testing.T) {
	now := time.Now()
	hostile := []string{"bad\xff\xfeutf8.example", `quo"te.example`, "new\nline.example", `back\slash.example`, `trailing\`,
		"nul\x00.example", strings.Repeat("long", 200) + ".example", "ok.example"}
	var pts []agent.Point
	for i, d := range hostile {
		pts = append(pts, agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: d}, {Key: "server", Value: "m"}, {Key: "vmta", Value: "v\xc3"}},
			[]agent.Field{{Key: "rcp", Value: int64(i + 1)}, {Key: "kb", Value: 1.5}}, now))
	}
	l := NewLatest()
	l.Enqueue(pts, nil)
	text, fams := scrape(t, New(Config{}, noReporters, l, slog.New(slog.DiscardHandler)).Handler())
	got := fams["pmta_queue_rcp"].GetMetric()
	if len(got) != len(hostile) {
		t.Fatalf("%d pmta_queue_rcp series, want %d:\n%s", len(got), len(hostile), text)
	}
	for _, m := range got {
		for _, lp := range m.GetLabel() {
			if !utf8.ValidString(lp.GetValue()) || strings.ContainsAny(lp.GetValue(), "\n\x00") {
				t.Errorf("label %s=%q", lp.GetName(), lp.GetValue())
			}
		}
	}
	for _, m := range got {
		if labelValue(m, "domain") == `quo"te.example` && sampleValue(m) != 2 {
			t.Errorf("quo\"te.example = %v, want 2", sampleValue(m))
		}
	}
	if tool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

// TestMetricsBadSeriesCostOnlyThemselves: series client_golang refuses (a
// label name Prometheus reserves, two labels of one name, two components
// of one name) are left out of the scrape and logged, at most once per ten
// minutes; everything else is served.
func TestMetricsBadSeriesCostOnlyThemselves(t *testing.T) {
	rec := logtest.New()
	reps := []agent.StatsReporter{
		reporter{"api", []agent.Field{{Key: "polls", Value: int64(1)}}},
		reporter{"api", []agent.Field{{Key: "polls", Value: int64(2)}}},
		reporter{"pipeline", []agent.Field{{Key: "points", Value: int64(3)}, {Key: "batches", Value: math.NaN()}}},
	}
	l := NewLatest()
	l.Enqueue([]agent.Point{
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "__reserved", Value: "x"}, {Key: "domain", Value: "a.example"}}, []agent.Field{{Key: "rcp", Value: int64(1)}}, time.Now()),
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "a-b", Value: "1"}, {Key: "a_b", Value: "2"}, {Key: "domain", Value: "b.example"}}, []agent.Field{{Key: "rcp", Value: int64(2)}}, time.Now()),
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: "c.example"}}, []agent.Field{{Key: "rcp", Value: int64(3)}}, time.Now()),
		agent.NewPoint("pmta_vmta", []agent.Tag{{Key: "vmta", Value: "v"}}, []agent.Field{{Key: "rcp", Value: math.Inf(1)}}, time.Now()),
	}, nil)
	h := New(Config{}, func() []agent.StatsReporter { return reps }, l, rec.Logger()).Handler()
	text, fams := scrape(t, h)
	scrape(t, h)
	if q := fams["pmta_queue_rcp"].GetMetric(); len(q) != 1 || labelValue(q[0], "domain") != "c.example" {
		t.Errorf("pmta_queue_rcp: want only c.example:\n%s", text)
	}
	if p := fams["pmta_agent_polls_total"].GetMetric(); len(p) != 1 || sampleValue(p[0]) != 1 {
		t.Errorf("pmta_agent_polls_total: want the first api's 1:\n%s", text)
	}
	if v := sampleValue(fams["pmta_agent_batches_total"].GetMetric()[0]); !math.IsNaN(v) {
		t.Errorf("NaN served as %v", v)
	}
	if v := sampleValue(fams["pmta_vmta_rcp"].GetMetric()[0]); !math.IsInf(v, 1) {
		t.Errorf("+Inf served as %v", v)
	}
	var warned []string
	for _, r := range rec.Records() {
		warned = append(warned, r.String())
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "__reserved") || !strings.Contains(warned[0], "a_b") ||
		!strings.Contains(warned[0], "pmta_agent_polls_total") {
		t.Errorf("want one line naming the three refusals, got %q", warned)
	}
}

// TestMetricsUndescribedField: a field no table describes is served as a
// gauge with a help that says so, and logged once.
func TestMetricsUndescribedField(t *testing.T) {
	rec := logtest.New()
	reps := []agent.StatsReporter{reporter{"api", []agent.Field{{Key: "brand_new", Value: int64(4)}}},
		reporter{"acct", []agent.Field{{Key: "brand_new", Value: int64(5)}}}}
	l := NewLatest()
	l.Enqueue([]agent.Point{agent.NewPoint("pmta_vmta", []agent.Tag{{Key: "vmta", Value: "v"}}, []agent.Field{{Key: "new_kb", Value: 1.0}}, time.Now())}, nil)
	h := New(Config{}, func() []agent.StatsReporter { return reps }, l, rec.Logger()).Handler()
	scrape(t, h)
	text, fams := scrape(t, h)
	f := fams["pmta_agent_brand_new"]
	if f == nil || len(f.GetMetric()) != 2 || f.GetType() != dto.MetricType_GAUGE || !strings.HasPrefix(f.GetHelp(), "Not described yet") {
		t.Errorf("pmta_agent_brand_new: %v\n%s", f, text)
	}
	if f := fams["pmta_vmta_new_kb"]; f == nil || !strings.HasPrefix(f.GetHelp(), "Not described yet") {
		t.Errorf("pmta_vmta_new_kb: %v\n%s", f, text)
	}
	if n := len(rec.Records()); n != 2 {
		t.Errorf("%d log lines, want one per field: %v", n, rec.Records())
	}
}
