package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// TestBacklogDrainBenchmark measures (it asserts no speed) how fast the
// agent drains the backlog of a one-hour InfluxDB outage at 1,000 accounting
// records per second into a local InfluxDB, and the agent's peak RSS while
// holding it. It is a benchmark run as a test because it needs a real
// InfluxDB and a real agent process: PMTA_BENCH_BACKLOG=1 go test -run
// BacklogDrain -v ./cmd/pmta-agent (testdata/bench/backlog.sh does that).
// PMTA_BENCH_BACKLOG_SECONDS and PMTA_BENCH_BACKLOG_RATE change the outage.
func TestBacklogDrainBenchmark(t *testing.T) {
	if os.Getenv("PMTA_BENCH_BACKLOG") == "" {
		t.Skip("benchmark: set PMTA_BENCH_BACKLOG=1 to run")
	}
	seconds, rate := envInt("PMTA_BENCH_BACKLOG_SECONDS", 3600), envInt("PMTA_BENCH_BACKLOG_RATE", 1000)
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	srv := influxtest.Start(t)
	db := "pmta_backlog"
	srv.CreateDatabase(db)
	srv.Stop() // the outage

	dir := t.TempDir()
	logs := filepath.Join(dir, "log")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Options{Seed: 1, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, MaxSize: 256 << 20, SplitDiag: true, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, fmt.Sprintf(`server: backlog-mta
state_dir: %s
self_interval: 1h
listen: {address: %s}
api: {enabled: false}
pipeline: {max_domains: 10000}
acct: {enabled: true, globs: [%s], start_at: beginning}
sinks:
  influx: {enabled: true, url: %s, bucket: %s/autogen, buffer: {type: disk, max_backoff: 1s}}
`, filepath.Join(dir, "state"), addr, filepath.Join(logs, "*.csv"), srv.URL, db))
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	agent := &agentProc{t: t, bin: bin, config: cfgPath, log: logf}
	agent.start()
	defer agent.kill()

	// The outage, compressed: the hour's records are written as fast as the
	// simulator can while the agent tails them live; their timeLogged spans
	// the hour before now, so intervals close as the agent catches up.
	base := time.Now().Add(-time.Duration(seconds) * time.Second).Truncate(time.Minute)
	start := time.Now()
	for i := range seconds {
		if err := w.Write(rate, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	records := int64(seconds * rate)
	t.Logf("wrote %d records in %s", records, time.Since(start).Round(time.Millisecond))
	waitForMetric(t, addr, `pmta_agent_records_total{component="acct"}`, func(v float64) bool { return v >= float64(records) }, 10*time.Minute)
	waitForMetric(t, addr, `pmta_agent_tail_lag_bytes{component="acct"}`, func(v float64) bool { return v == 0 }, time.Minute)
	time.Sleep(3 * time.Second) // the last intervals close
	read := time.Since(start)
	queued := metric(t, addr, `pmta_agent_queued_points{component="sink_influx"}`)
	qbytes := metric(t, addr, `pmta_agent_queued_bytes{component="sink_influx"}`)
	rssBacklog := peakRSS(t, agent.cmd.Process.Pid)

	srv.Restart()
	start = time.Now()
	waitForMetric(t, addr, `pmta_agent_queued_points{component="sink_influx"}`, func(v float64) bool { return v == 0 }, 10*time.Minute)
	drain := time.Since(start)
	rss := peakRSS(t, agent.cmd.Process.Pid)
	if err := agent.stop(); err != nil {
		t.Errorf("agent stop: %v", err)
	}
	total := viewTotal(t, srv, db, "pmta_acct")
	if total != records {
		t.Errorf("InfluxDB counts %d records, written %d", total, records)
		agentLog, _ := os.ReadFile(logf.Name())
		t.Logf("agent log (last 4 KiB):\n%s", tail(agentLog, 4096))
	}
	summary := fmt.Sprintf("backlog: %d s at %d records/s = %d records read in %s; %d points (%.1f MiB) queued; drained in %s = %.0fx real time; agent peak RSS %d MiB (%d MiB before the drain)",
		seconds, rate, records, read.Round(time.Millisecond), int64(queued), qbytes/(1<<20), drain.Round(time.Millisecond),
		float64(seconds)/drain.Seconds(), rss>>10, rssBacklog>>10)
	t.Log(summary)
	if p := os.Getenv("PMTA_BENCH_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(summary+"\n"), 0o644)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// metric reads one sample from the agent's /metrics (-1 when absent).
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

func waitForMetric(t *testing.T, addr, series string, ok func(float64) bool, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if v := metric(t, addr, series); v >= 0 && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach its target within %s (now %v)", series, limit, metric(t, addr, series))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// peakRSS returns the process's peak resident set (VmHWM) in KiB.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
