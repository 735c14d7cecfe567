package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// syncBuffer is a strings.Builder safe for the concurrent writes of the
// stdout sink and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func measurements(lp string) map[string]int {
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(lp), "\n") {
		name, _, _ := strings.Cut(line, ",")
		name, _, _ = strings.Cut(name, " ")
		m[name]++
	}
	return m
}

// The README's first command: the demo prints every measurement within a
// few seconds, with no PowerMTA and no database.
func TestDemoPrintsEveryMeasurement(t *testing.T) {
	t.Parallel() // mostly waiting for its 8 s: beside the chaos test
	for _, dialect := range []string{"pmta", "seed"} {
		t.Run(dialect, func(t *testing.T) {
			var out, errOut syncBuffer
			code := run([]string{"demo", "-dialect", dialect, "-duration", "8s", "-interval", "1s"}, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
			}
			got := measurements(out.String())
			for _, m := range []string{"pmta_status", "pmta_queue", "pmta_domain", "pmta_vmta", "pmta_acct", "pmta_acct_domain", "pmta_acct_diag", "pmta_agent"} {
				if got[m] == 0 {
					t.Errorf("no %s in the demo output (got %v)", m, got)
				}
			}
		})
	}
}

func TestOncePrintsOneRound(t *testing.T) {
	s := sim.New(sim.Options{Seed: 5, Clock: func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) }})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	path := t.TempDir() + "/agent.yaml"
	writeTestFile(t, path, "server: once-test\napi:\n  url: "+api.URL+"\nsinks:\n  stdout:\n    enabled: true\n")
	var out, errOut syncBuffer
	if code := run([]string{"once", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
	}
	got := measurements(out.String())
	if got["pmta_status"] != 1 || got["pmta_vmta"] != len(s.Snapshot().VMTAs) || got["pmta_queue"] == 0 || got["pmta_domain"] == 0 {
		t.Errorf("once printed %v", got)
	}
	if !strings.Contains(out.String(), "server=once-test") {
		t.Errorf("points lack the server tag:\n%s", out.String()[:200])
	}

	// A broken API: the round still prints up=0, and the exit status says so.
	s.SetFaults(sim.Faults{Down: true})
	out, errOut = syncBuffer{}, syncBuffer{}
	if code := run([]string{"once", "-config", path}, &out, &errOut); code != 1 {
		t.Errorf("exit %d with the API down, want 1", code)
	}
	if !strings.Contains(out.String(), "pmta_status,server=once-test up=0i") {
		t.Errorf("no up=0 point:\n%s", out.String())
	}
}

// backfill without a configuration: line protocol on stdout whose pmta_acct
// counts sum to the records in the files, and a summary on stderr.
func TestBackfillToStdout(t *testing.T) {
	dir := t.TempDir()
	a, b := dir+"/acct-2024-01-15-0000.csv", dir+"/acct-2024-01-15-0001.csv"
	if err := sim.GenerateFile(a, sim.GenerateOptions{Records: 3000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sim.GenerateFile(b, sim.GenerateOptions{Records: 2000, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	if code := run([]string{"backfill", a, b}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
	}
	var sum int64
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "pmta_acct,") {
			continue
		}
		_, after, _ := strings.Cut(line, " count=")
		num, _, _ := strings.Cut(after, "i")
		var n int64
		if _, err := fmt.Sscan(num, &n); err != nil {
			t.Fatalf("bad count in %q", line)
		}
		sum += n
	}
	if sum != 5000 {
		t.Errorf("pmta_acct counts sum to %d, want 5000", sum)
	}
	summary := strings.Index(errOut.String(), "backfill: 2 files, 5000 records, 0 malformed")
	sink := strings.Index(errOut.String(), "backfill: sink stdout: ")
	if summary < 0 || sink < summary {
		t.Errorf("want the summary, then the sink's line, on stderr:\n%s", errOut.String())
	}
	// A backfill's interval need not divide an hour.
	out, errOut = syncBuffer{}, syncBuffer{}
	if code := run([]string{"backfill", "-interval", "7s", a}, &out, &errOut); code != 0 {
		t.Errorf("backfill -interval 7s: exit %d; stderr:\n%s", code, errOut.String())
	}
	if code := run([]string{"backfill"}, &out, &errOut); code != 2 {
		t.Errorf("backfill without files: exit %d, want 2", code)
	}
}

// A backfill into a database that does not exist (InfluxDB answers 404
// for ever) gives up after -stall instead of retrying until killed: exit 1,
// the stall named, the points counted as left queued.
func TestBackfillGivesUpOnAStalledSink(t *testing.T) {
	dir := t.TempDir()
	influx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Influxdb-Error", `database not found: "nodb"`)
		http.Error(w, `{"error":"database not found: \"nodb\""}`, http.StatusNotFound)
	}))
	defer influx.Close()
	file := dir + "/acct-2024-01-15-0000.csv"
	if err := sim.GenerateFile(file, sim.GenerateOptions{Records: 100, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	path := dir + "/agent.yaml"
	writeTestFile(t, path, "state_dir: "+dir+"/state\nshutdown_timeout: 1s\n"+
		"sinks: {influx: {enabled: true, url: "+influx.URL+", bucket: nodb/autogen, buffer: {min_backoff: 10ms, max_backoff: 50ms}}}\n")
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"backfill", "-quiet", "-stall", "500ms", "-config", path, file}, &out, &errOut)
	}()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	case <-time.After(time.Minute):
		t.Fatalf("backfill still running against a 404; stderr:\n%s", errOut.String())
	}
	for _, want := range []string{"sink influx took none of its", "backfill: 1 files, 100 records", "points written, 0 refused, 0 dead-lettered, 0 dropped"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), " 0 left queued") {
		t.Errorf("the points not written are not reported queued:\n%s", errOut.String())
	}
	if code := run([]string{"backfill", "-stall", "-1s", file}, &out, &errOut); code != 2 {
		t.Errorf("-stall -1s: exit %d, want 2", code)
	}
}

// A second agent on the same state directory is refused, with the pid of
// the first, instead of sharing its checkpoint and queues.
func TestSecondAgentOnSameStateDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/agent.yaml"
	writeTestFile(t, path, "server: lock-test\nstate_dir: "+dir+"/state\nlisten: {enabled: false}\napi: {enabled: false}\n"+
		"acct: {enabled: true, globs: ["+dir+"/log/*.csv]}\nsinks: {influx: {enabled: true}}\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	first, err := build(cfg, io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = build(cfg, io.Discard, log)
	if err == nil || !strings.Contains(err.Error(), "is locked by another process (pid") {
		t.Fatalf("second agent: %v", err)
	}
	if err := first.engine.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := build(cfg, io.Discard, log)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	_ = again.engine.Close(context.Background())
}

// once previews the accounting source: the newest closed intervals of the
// newest files, as the tailer would count them, printed with the round.
func TestOncePreviewsTheAccountingFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := sim.New(sim.Options{Seed: 3, Rate: -1}).NewAcctWriter(sim.AcctOptions{Dir: dir, LocalZone: noonZone()})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Write(40, time.Now().Add(-time.Hour)), w.Write(25, time.Now().Add(-20*time.Second)), w.Close()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, path, "server: once-acct\napi: {enabled: false}\nacct: {enabled: true, globs: ["+filepath.Join(dir, "*.csv")+"]}\nsinks: {stdout: {enabled: true}}\n")
	var out, errOut syncBuffer
	if code := run([]string{"once", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
	}
	var sum int64
	eachPointIn(t, []byte(out.String()), func(m string, tags map[string]string, fields map[string]int64) {
		if m == "pmta_acct" && tags["server"] == "once-acct" {
			sum += fields["count"]
		}
	})
	if sum != 25 || !strings.Contains(errOut.String(), "once: accounting preview: 25 records logged") {
		t.Errorf("pmta_acct counts sum to %d, want the 25 newest; stderr:\n%s", sum, errOut.String())
	}
}
