package fleettest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/internal/servertest"
)

// Fleet shape: enough agents to be a fleet, few enough records that two
// cores carry them beside the other packages' tests.
const (
	fleetSize   = 20
	acctRate    = 25 // records per second per simulator
	killAfter   = 15 * time.Second
	gatewayDown = 5 * time.Second
	settleLimit = 90 * time.Second
)

// killMoment is the first time from t on that lies killOffset after a
// boundary of the agents' accounting intervals (5 s, from the epoch). The
// agents close their intervals grace (500 ms) after the end and export them at
// once, so the gateway dies holding a burst of accounting points. A moment
// at random often finds it holding nothing: a gateway with a batch processor
// (which answers the agents before the data is on disk) lost records at this
// moment and passed at a random one.
func killMoment(t time.Time) time.Time {
	const interval, killOffset = 5 * time.Second, 1200 * time.Millisecond
	at := t.Truncate(interval).Add(killOffset)
	if at.Before(t) {
		at = at.Add(interval)
	}
	return at
}

// member is one mail server: its simulator and its agent.
type member struct {
	server string
	acct   string // the simulator's accounting directory
	sim    *proc
	agent  *proc
}

// agentConfig is one agent's configuration: the simulator's API and files,
// the gateway over OTLP/gRPC with cumulative temporality (what the gateway's
// header asks of agents), short intervals so that the test ends soon.
func agentConfig(server, dir, apiURL, acctDir, gateway string) string {
	return fmt.Sprintf(`server: %s
state_dir: %s
log_level: warn
self_interval: 10s
shutdown_timeout: 5s
listen: {enabled: false}
api:
  enabled: true
  url: %s
  interval: 5s
  timeout: 2s
  jitter: 1s
acct:
  enabled: true
  globs: [%s]
  start_at: beginning
  interval: 5s
  grace: 500ms
  poll_every: 200ms
sinks:
  influx: {enabled: false}
  otlp:
    enabled: true
    protocol: grpc
    endpoint: %s
    insecure: true
    temporality: cumulative
    timeout: 5s
    buffer: {type: disk, min_backoff: 200ms, max_backoff: 2s}
`, server, filepath.Join(dir, "state"), apiURL, strconv.Quote(filepath.Join(acctDir, "*.csv")), gateway)
}

// gatewayStats follows the gateway's own metrics across its restart.
type gatewayStats struct {
	mu           sync.Mutex
	lives        []gatewayLife // the counters of each run of the gateway, which a restart resets
	queuedAtKill float64       // bytes in the sending queue at the last scrape before the kill
	queued       float64
	maxRSS       int64 // KiB
	maxStoreRSS  int64
}

// gatewayLife is what one run of the gateway counted.
type gatewayLife struct {
	accepted float64 // data points accepted from the agents
	cpu      float64 // CPU seconds
}

func (s *gatewayStats) scrape(g *gateway, store *victoria) {
	text, err := g.metrics()
	rss, storeRSS := g.proc.rssKiB(), store.proc.rssKiB()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxRSS, s.maxStoreRSS = max(s.maxRSS, rss), max(s.maxStoreRSS, storeRSS)
	if err != nil {
		return
	}
	life := &s.lives[len(s.lives)-1]
	if v, ok := scrapeSum(text, "otelcol_receiver_accepted_metric_points"); ok {
		life.accepted = v
	}
	if v, ok := scrapeSum(text, "otelcol_process_cpu_seconds"); ok {
		life.cpu = v
	}
	if v, ok := scrapeSum(text, "otelcol_exporter_queue_size"); ok {
		s.queued = v
	}
}

// totals adds up the lives.
func (s *gatewayStats) totals() (accepted, cpu float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lives {
		accepted += l.accepted
		cpu += l.cpu
	}
	return accepted, cpu
}

// follow scrapes every half second until the returned function is called
// (which may be called more than once).
func (s *gatewayStats) follow(g *gateway, store *victoria) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				s.scrape(g, store)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

func (s *gatewayStats) killed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queuedAtKill = s.queued
	s.lives = append(s.lives, gatewayLife{})
}

// TestFleetThroughGateway: 20 simulated PowerMTAs write accounting files;
// 20 agents tail them and push OTLP to the collector gateway of
// deploy/otelcol/gateway.yaml, which writes to VictoriaMetrics; the gateway
// is killed with SIGKILL in the middle and restarted on the same ports and
// queue directory. At the end the store's pmta.acct.count totals per
// (server, type, isp) equal the records in the files, exactly.
func TestFleetThroughGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test skipped in -short mode")
	}
	writeFor := 40 * time.Second
	if s := os.Getenv("PMTA_FLEET_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PMTA_FLEET_SECONDS=%q: want a positive number of seconds", s)
		}
		writeFor = time.Duration(n) * time.Second
	}
	colBin := collectorBinary(t)
	vmBin, err := victoriaBinary()
	if err != nil {
		servertest.Missing(t, err.Error())
	}
	began := time.Now()
	base := t.TempDir()
	agentBin, simBin := buildFleetBinaries(t, filepath.Join(base, "bin"))

	store := startVictoria(t, vmBin, filepath.Join(base, "victoria"))
	gw := startGateway(t, colBin, filepath.Join(base, "gateway"), store)

	fleet := make([]*member, fleetSize)
	for i := range fleet {
		m := &member{server: fmt.Sprintf("fleet-mta%02d", i+1)}
		dir := filepath.Join(base, m.server)
		m.acct = filepath.Join(dir, "acct")
		m.sim = newProc(m.server+" simulator", filepath.Join(dir, "sim.log"), nil, simBin,
			"-listen", "127.0.0.1:0", "-seed", strconv.Itoa(1000+i), "-hostname", m.server+".sim.example",
			"-domains", "30", "-vmtas", "12", "-acct-dir", m.acct, "-acct-rate", strconv.Itoa(acctRate),
			"-acct-max-size", "65536", "-acct-split-diag")
		apiURL := startSim(t, m.sim)
		cfg := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(cfg, []byte(agentConfig(m.server, dir, apiURL, m.acct, gw.grpcEndpoint)), 0o600); err != nil {
			t.Fatal(err)
		}
		m.agent = newProc(m.server+" agent", filepath.Join(dir, "agent.log"), nil, agentBin, "run", "-config", cfg)
		m.agent.start(t, nil)
		fleet[i] = m
	}
	t.Cleanup(func() {
		for _, m := range fleet {
			if m != nil {
				m.sim.kill()
				m.agent.kill()
			}
		}
	})
	running := time.Now()

	stats := &gatewayStats{lives: make([]gatewayLife, 1)}
	stopScraping := stats.follow(gw, store)

	// The gateway dies mid-run, just after the agents sent the accounting
	// intervals that closed at the last 5 s boundary (while the gateway
	// holds them, if it holds anything), and comes back on the same ports
	// and queue directory.
	time.Sleep(time.Until(killMoment(running.Add(killAfter))))
	killedAt := time.Since(running)
	stopScraping()
	stats.killed()
	gw.proc.kill()
	time.Sleep(gatewayDown)
	gw.start(t)
	stopScraping = stats.follow(gw, store)
	defer stopScraping()
	if rest := writeFor - time.Since(running); rest > 0 {
		time.Sleep(rest)
	}

	// The simulators stop (closing their files); what they wrote is the
	// expectation, counted from the files.
	isps := agent.NewISPMap(nil)
	want := map[key]int64{}
	var written int64
	for _, m := range fleet {
		if err := m.sim.stop(10 * time.Second); err != nil {
			t.Errorf("simulator: %v; its log:\n%s", err, m.sim.tail(2048))
		}
		counts, n, err := countAcctFiles(m.acct, m.server, isps)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("%s wrote no records; its log:\n%s", m.server, m.sim.tail(2048))
		}
		maps.Copy(want, counts)
		written += n
	}
	wroteFor := time.Since(running)

	// Every record arrives: poll the store until its totals equal the files'.
	deadline := time.Now().Add(settleLimit)
	var got map[key]int64
	var res storeResult
	for {
		res, err = acctTotals(store)
		if err != nil {
			t.Fatal(err)
		}
		got = res.totals
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	settled := time.Since(running) - wroteFor
	// A little longer, so that a late extra count would show.
	time.Sleep(2 * time.Second)
	if res, err = acctTotals(store); err != nil {
		t.Fatal(err)
	}
	got = res.totals
	stopScraping()
	stats.scrape(gw, store)
	if !gw.proc.running() {
		t.Error("the gateway exited by itself after its restart")
	}

	if diff := diffTotals(want, got); diff != "" {
		t.Errorf("pmta.acct.count in the store differs from the records written (want = files, got = store):\n%s", diff)
	}
	for _, p := range res.problems {
		t.Error(p)
	}

	// What a dashboard computes gives the same totals.
	vec, err := store.query(`sum by (server, type, isp) (last_over_time({__name__="pmta.acct.count"}[1h]))`)
	if err != nil {
		t.Fatal(err)
	}
	fromQuery := map[key]int64{}
	for _, s := range vec {
		f, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		fromQuery[key{Server: s.Metric["server"], Type: s.Metric["type"], ISP: s.Metric["isp"]}] = int64(math.Round(f))
	}
	if diff := diffTotals(want, fromQuery); diff != "" {
		t.Errorf("MetricsQL sum by (server, type, isp) of last_over_time differs from the records written:\n%s", diff)
	}

	for _, m := range fleet {
		if err := m.agent.stop(15 * time.Second); err != nil {
			t.Errorf("agent: %v", err)
		}
		if t.Failed() {
			t.Logf("%s agent log (last 2 KiB):\n%s", m.server, m.agent.tail(2048))
		}
	}
	series, err := store.seriesCount()
	if err != nil {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("gateway log (last 8 KiB):\n%s", gw.proc.tail(8192))
	}

	accepted, cpu := stats.totals()
	run := wroteFor.Seconds()
	t.Logf("fleet: %d agents, %d records written in %.0fs, %d counted in the store from %d pmta.acct.count series "+
		"(%d samples, %d of them repeated); gateway SIGKILLed at %.1fs with %.0f KiB in its sending queue, down %s; "+
		"all delivered %.1fs after the writers stopped; gateway accepted %.0f data points (%.0f/s per agent) "+
		"using %.0f%% of a core, max RSS %d MiB; VictoriaMetrics max RSS %d MiB, %d series; elapsed %s",
		fleetSize, written, run, sum(got), res.series, res.samples, res.repeated, killedAt.Seconds(), stats.queuedAtKill/1024,
		gatewayDown, settled.Seconds(), accepted, accepted/float64(fleetSize)/run, 100*cpu/run,
		stats.maxRSS>>10, stats.maxStoreRSS>>10, series, time.Since(began).Round(time.Second))
}

// storeResult is what the store holds of pmta.acct.count.
type storeResult struct {
	totals   map[key]int64
	series   int
	samples  int
	repeated int // samples at a time their series already has: redelivered after the SIGKILL
	problems []string
}

// acctTotals reads every pmta.acct.count series raw and sums, per (server,
// type, isp), each series' total: with cumulative temporality the last
// sample of a series is its running total (and the largest; a repeated
// sample changes nothing).
func acctTotals(store *victoria) (storeResult, error) {
	series, err := store.export(`{__name__="pmta.acct.count"}`)
	if err != nil {
		return storeResult{}, err
	}
	r := storeResult{totals: map[key]int64{}, series: len(series)}
	for _, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		r.samples += len(s.Values)
		last, lastAt := 0.0, int64(math.MinInt64)
		maxv := 0.0
		seen := map[int64]float64{}
		for i, v := range s.Values {
			at := s.Timestamps[i]
			if prev, ok := seen[at]; ok {
				r.repeated++
				if prev != v && len(r.problems) < 10 {
					r.problems = append(r.problems, fmt.Sprintf("series %v: two totals, %v and %v, at %d", s.Metric, prev, v, at))
				}
			}
			seen[at] = v
			if at >= lastAt {
				last, lastAt = v, at
			}
			maxv = max(maxv, v)
		}
		if last != maxv && len(r.problems) < 10 {
			r.problems = append(r.problems, fmt.Sprintf("series %v: last sample %v is not its largest %v (a running total went down)", s.Metric, last, maxv))
		}
		if s.Metric["host.name"] != s.Metric["server"] && len(r.problems) < 10 {
			r.problems = append(r.problems, fmt.Sprintf("series %v: host.name is not the server", s.Metric))
		}
		r.totals[key{Server: s.Metric["server"], Type: s.Metric["type"], ISP: s.Metric["isp"]}] += int64(math.Round(last))
	}
	return r, nil
}

// diffTotals lists the keys whose counts differ, at most 40 lines, with the
// sums of both sides.
func diffTotals(want, got map[key]int64) string {
	keys := slices.Collect(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Compare(a.String(), b.String()) })
	var b strings.Builder
	lines := 0
	for _, k := range keys {
		if want[k] == got[k] {
			continue
		}
		if lines++; lines <= 40 {
			fmt.Fprintf(&b, "  %-40s want %6d  got %6d  (%+d)\n", k, want[k], got[k], got[k]-want[k])
		}
	}
	if lines == 0 {
		return ""
	}
	if lines > 40 {
		fmt.Fprintf(&b, "  … and %d more\n", lines-40)
	}
	fmt.Fprintf(&b, "  %d of %d keys differ; total want %d, got %d\n", lines, len(keys), sum(want), sum(got))
	return b.String()
}

func sum(m map[key]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
