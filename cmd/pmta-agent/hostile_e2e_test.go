package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/engine"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// statMap reads a StatsReporter's int64 fields.
func statMap(r agent.StatsReporter) map[string]int64 {
	m := map[string]int64{}
	for _, f := range r.Stats() {
		if n, ok := f.Value.(int64); ok {
			m[f.Key] = n
		}
	}
	return m
}

// When InfluxDB stores all but one line of a batch (1.8's partial write), the
// agent counted the whole batch as dropped (7 logged, 1 was). Now exactly
// the refused line goes to the dead-letter file, the others count as
// written, and tag values that line protocol could not carry before
// (backslashes, invalid UTF-8) are stored as SafeTag makes them.
func TestInfluxPartialWriteCountsExactly(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_partial"
	srv.CreateDatabase(db)
	cfg := config.Default()
	cfg.Server = "partial-mta"
	cfg.StateDir = t.TempDir()
	cfg.Sinks.Influx.Enabled = true
	cfg.Sinks.Influx.URL = srv.URL
	cfg.Sinks.Influx.Bucket = db + "/autogen"
	cfg.API.Enabled = false
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := build(cfg, io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.engine.Close(context.Background()) }()
	d, pipeline := b.engine.Deliveries()[0], b.engine.Pipeline()
	ts := time.Now().Truncate(time.Second)

	// count is an integer in pmta_acct from now on.
	first := agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "domain", Value: "seed.example"}},
		[]agent.Field{{Key: "count", Value: int64(1)}}, ts)
	pipeline.Emit(agent.Batch{Points: []agent.Point{first}})
	drain(t, d)

	domains := []string{`endbs\\`, "caf\xe9.com", `a\,b`, "tab\there", `C:\`, "sp ace=eq", "ok.example"}
	var batch []agent.Point
	for i, dom := range domains {
		batch = append(batch, agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "domain", Value: dom}},
			[]agent.Field{{Key: "count", Value: int64(i + 1)}}, ts))
	}
	bad := agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "domain", Value: "conflict.example"}},
		[]agent.Field{{Key: "count", Value: 2.5}}, ts) // a float where InfluxDB has integers
	batch = append(batch[:3], append([]agent.Point{bad}, batch[3:]...)...)
	pipeline.Emit(agent.Batch{Points: batch})
	drain(t, d)

	st := statMap(d)
	if st["written_points"] != 8 || st["dead_lettered_points"] != 1 || st["dropped_rejected"] != 0 || st["queued_points"] != 0 {
		t.Errorf("written %d (want 8), dead-lettered %d (want 1), refused %d, queued %d",
			st["written_points"], st["dead_lettered_points"], st["dropped_rejected"], st["queued_points"])
	}
	if in, outN := st["recovered_points"]+st["enqueued_points"], st["written_points"]+st["dropped_rejected"]+
		st["dead_lettered_points"]+st["dropped_points"]+st["queued_points"]; in != outN {
		t.Errorf("points do not reconcile: %d in, %d out (%v)", in, outN, st)
	}
	dl, err := os.ReadFile(filepath.Join(cfg.StateDir, "deadletter", "influx.lp"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dl), "domain=conflict.example") || !strings.Contains(string(dl), "field type conflict") ||
		strings.Count(string(dl), "\npmta_acct") != 1 {
		t.Errorf("dead-letter file:\n%s", dl)
	}

	got := map[string]string{}
	for _, r := range rows(t, srv, db, `SELECT "count" FROM pmta_acct GROUP BY "domain"`) {
		got[r["domain"]] = r["count"]
	}
	for i, dom := range domains {
		stored := agent.SafeTag(agent.NormalizeDomain(dom))
		if v := got[stored]; v != fmt.Sprint(i+1) {
			t.Errorf("domain %q stored as %q: count %q, want %d (all stored: %q)", dom, stored, v, i+1, got)
		}
	}
	if _, ok := got["conflict.example"]; ok {
		t.Errorf("the refused point was stored")
	}
}

// drain flushes d until nothing is left (or fails the test after 15 s).
func drain(t *testing.T, d *engine.Delivery) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.Drain(ctx); err != nil || d.Queued() != 0 {
		t.Fatalf("drain: %v, %d queued", err, d.Queued())
	}
}

// backfill exited 0 with "86350 points" when InfluxDB refused every one of
// them. It prints what each sink did and fails when any point was not
// written.
func TestBackfillFailsWhenTheSinkRefuses(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_backfill_refused"
	srv.CreateDatabase(db)
	// count as a string in the shard of the file's day: every pmta_acct
	// point of the backfill conflicts.
	if err := srv.Write(db, `pmta_acct,type=d count="text" 1705312800000000000`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	acctFile := filepath.Join(dir, "acct.csv")
	writeTestFile(t, acctFile, "type,timeLogged,rcpt,vmta\r\n"+
		"d,2024-01-15 10:00:01+0000,a@gmail.com,v1\r\nd,2024-01-15 10:00:02+0000,b@yahoo.com,v1\r\n")
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, fmt.Sprintf(`server: bf
state_dir: %s
api: {enabled: false}
listen: {enabled: false}
sinks:
  influx: {enabled: true, url: %s, bucket: %s/autogen}
`, filepath.Join(dir, "state"), srv.URL, db))
	var stdout, stderr syncBuffer
	code := run([]string{"backfill", "-config", cfgPath, "-quiet", acctFile}, &stdout, &stderr)
	if code == 0 {
		t.Fatalf("backfill exited 0 although InfluxDB refused the points:\n%s", stderr.String())
	}
	// The pmta_acct points conflict; the pmta_acct_domain view's are stored.
	if !strings.Contains(stderr.String(), "sink influx: 2 points written, 0 refused, 2 dead-lettered") {
		t.Errorf("no per-sink summary in:\n%s", stderr.String())
	}
}

// check-config said OK for an accounting directory the agent cannot read.
func TestCheckConfigReportsUnreadableAcctFiles(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file-not-dir")
	writeTestFile(t, notDir, "")
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, fmt.Sprintf(`state_dir: %s
api: {enabled: false}
acct:
  enabled: true
  globs: [%s, %s]
sinks: {stdout: {enabled: true}, influx: {enabled: false}}
`, dir, filepath.Join(notDir, "acct-*.csv"), filepath.Join(dir, "missing", "acct-*.csv")))
	var stdout, stderr syncBuffer
	if code := run([]string{"check-config", "-config", cfgPath}, &stdout, &stderr); code == 0 {
		t.Fatalf("check-config exit 0:\n%s", stdout.String())
	}
	for _, want := range []string{"cannot read directory " + notDir, filepath.Join(dir, "missing") + " does not exist"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %q in:\n%s", want, stderr.String())
		}
	}
}
