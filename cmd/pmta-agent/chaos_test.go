package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
	"github.com/pmta-agent/pmta-agent/sinks/otlp/otelcoltest"
)

// agentProc is pmta-agent running as a real process, so that it can be
// killed with SIGKILL.
type agentProc struct {
	t      *testing.T
	bin    string
	config string
	log    *os.File
	cmd    *exec.Cmd
}

func (a *agentProc) start() {
	a.t.Helper()
	a.cmd = exec.Command(a.bin, "run", "-config", a.config)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		a.t.Fatalf("start agent: %v", err)
	}
}

func (a *agentProc) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
}

func (a *agentProc) stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	return a.cmd.Wait()
}

// buildAgent compiles pmta-agent once per test binary run.
var buildAgent = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pmta-agent-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pmta-agent")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestChaos: the simulator writes rotating accounting files at a steady rate,
// and among its records hostile ones (invalid UTF-8 and backslashes in
// domains and SMTP replies, far-future and ancient times, a quote never
// closed); the agent tails them into a real InfluxDB and a real collector
// while the test kills it with SIGKILL at random moments and stops InfluxDB
// for a while (also while the agent is down). At the end both sides hold,
// per (type, domain, vmta), exactly the records written less those the
// agent must refuse (malformed, out of range). PMTA_CHAOS_SEED repeats a
// run; PMTA_CHAOS_SECONDS sets the writing time (default 60).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	// Its agent is a process of its own, with its own InfluxDB and
	// collector: it runs beside the other long tests that wait more than they work.
	t.Parallel()
	seed := time.Now().UnixNano()
	if s := os.Getenv("PMTA_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	run := 60 * time.Second
	if s := os.Getenv("PMTA_CHAOS_SECONDS"); s != "" {
		n, _ := strconv.Atoi(s)
		run = time.Duration(n) * time.Second
	}
	t.Logf("chaos seed %d (repeat with PMTA_CHAOS_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc4a05))

	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	srv := influxtest.Start(t)
	db := "pmta_chaos"
	srv.CreateDatabase(db)
	col := otelcoltest.Start(t)

	dir := t.TempDir()
	logs, moved, state := filepath.Join(dir, "log"), filepath.Join(dir, "moved"), filepath.Join(dir, "state")
	s := sim.New(sim.Options{Seed: seed, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, MoveTo: moved, MaxSize: 192 << 10, SplitDiag: true, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, fmt.Sprintf(`server: chaos-mta
state_dir: %s
self_interval: 1h
shutdown_timeout: 5s
listen: {enabled: false}
api: {enabled: false}
pipeline: {max_domains: 10000}
acct:
  enabled: true
  globs: [%s, %s]
  start_at: beginning
  interval: 5s
  grace: 1s
  poll_every: 200ms
  views:
    - {name: pmta_acct, tags: [type, isp, vmta, pool, source_ip]}
    - {name: pmta_acct_domain, tags: [type, domain, isp, bounce_cat, dsn_class], max_domains: 500}
    - {name: pmta_acct_full, tags: [type, domain, isp, vmta, pool, source_ip, bounce_cat, dsn_class]}
sinks:
  influx:
    enabled: true
    url: %s
    bucket: %s/autogen
    timeout: 2s
    buffer: {type: disk, min_backoff: 100ms, max_backoff: 1s}
  otlp:
    enabled: true
    protocol: grpc
    endpoint: %s
    insecure: true
    timeout: 2s
    buffer: {type: disk, min_backoff: 100ms, max_backoff: 1s}
`, state, filepath.Join(logs, "*.csv"), filepath.Join(moved, "*.csv"), srv.URL, db, col.GRPCEndpoint()))
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	agent := &agentProc{t: t, bin: bin, config: cfgPath, log: logf}
	agent.start()

	// The writer: ~400 records/s in 10 steps a second, rotating now and then.
	ctx, stopWriting := context.WithTimeout(context.Background(), run)
	defer stopWriting()
	var written int64
	hostile := newHostileWriter(w)
	writerDone := make(chan error, 1)
	go func() {
		wrng := rand.New(rand.NewPCG(uint64(seed), 0x3417e))
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for ticks := 0; ; ticks++ {
			select {
			case <-ctx.Done():
				writerDone <- w.Close()
				return
			case now := <-tick.C:
				n := 20 + wrng.IntN(41)
				if err := w.Write(n, now); err != nil {
					writerDone <- err
					return
				}
				written += int64(n)
				if ticks%7 == 3 {
					if err := hostile.write(ticks/7, now); err != nil {
						writerDone <- err
						return
					}
				}
				if wrng.IntN(50) == 0 {
					if err := w.Rotate(); err != nil {
						writerDone <- err
						return
					}
				}
			}
		}
	}()

	restarts, outages := 0, 0
	for ctx.Err() == nil {
		sleepCtx(ctx, time.Duration(1500+rng.IntN(3000))*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
		switch rng.IntN(3) {
		case 0: // SIGKILL, down for a moment
			agent.kill()
			restarts++
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			agent.start()
		case 1: // InfluxDB outage
			srv.Stop()
			outages++
			time.Sleep(time.Duration(2000+rng.IntN(4000)) * time.Millisecond)
			srv.Restart()
		case 2: // both: InfluxDB goes down, the agent is killed and restarted during the outage
			srv.Stop()
			outages++
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
			agent.kill()
			restarts++
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			agent.start()
			time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
			srv.Restart()
		}
	}
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}

	// Everything written must arrive: wait for the totals, then stop cleanly.
	want := w.Counts()
	for k, n := range hostile.counted {
		want[k] += n
	}
	var wantTotal int64
	for _, n := range want {
		wantTotal += n
	}
	deadline := time.Now().Add(90 * time.Second)
	var got, gotOTLP map[sim.AcctKey]int64
	var total, totalOTLP int64
	for {
		got, total = acctSums(t, srv, db)
		gotOTLP, totalOTLP = collectorAcctDedup(t, col)
		if (total >= wantTotal && totalOTLP >= wantTotal) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A little longer, so that a late double count would show.
	time.Sleep(2 * time.Second)
	got, total = acctSums(t, srv, db)
	gotOTLP, totalOTLP = collectorAcctDedup(t, col)
	if err := agent.stop(); err != nil {
		t.Errorf("agent did not stop cleanly: %v", err)
	}
	for side, sums := range map[string]map[sim.AcctKey]int64{"InfluxDB": got, "the collector": gotOTLP} {
		for k, n := range want {
			if sums[k] != n {
				t.Errorf("%v: %s has %d, written %d (less %d refused)", k, side, sums[k], n+hostile.refused[k], hostile.refused[k])
			}
		}
		for k, n := range sums {
			if _, ok := want[k]; !ok {
				t.Errorf("%v: %s has %d, none written", k, side, n)
			}
		}
	}
	checkViewsAgree(t, srv, db, total)
	series, err := srv.Query(db, `SELECT "count" FROM pmta_acct_full`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		for _, v := range s.Values {
			if ns, _ := v[0].(json.Number).Int64(); ns%int64(5*time.Second) != 0 {
				t.Errorf("point at %d is off the 5 s interval grid", ns)
			}
		}
	}
	if t.Failed() {
		agentLog, _ := os.ReadFile(logf.Name())
		t.Logf("agent log (last 4 KiB):\n%s", tail(agentLog, 4096))
	}
	summary := fmt.Sprintf("chaos: records written %d (%d hostile: %d counted, %d malformed, %d out of range), "+
		"counted in InfluxDB %d, at the collector %d, restarts %d, outages %d, seed %d",
		written+hostile.total(), hostile.total(), hostile.countedTotal(), hostile.malformed, hostile.outOfRange,
		total, totalOTLP, restarts, outages, seed)
	if written+hostile.countedTotal() != wantTotal {
		t.Errorf("writer wrote %d records but counts %d", written+hostile.countedTotal(), wantTotal)
	}
	t.Log(summary)
	if p := os.Getenv("PMTA_CHAOS_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(summary+"\n"), 0o644)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
