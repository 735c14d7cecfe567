package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/impact"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// impact -send writes the pmta_impact points through the configured sinks
// (a real InfluxDB here), says on stderr what each sink did with them, and
// a second run over the same change overwrites them. A sink that refuses
// points makes the exit status 1.
func TestImpactSend(t *testing.T) {
	influx := influxtest.Start(t)
	influx.CreateDatabase("impact")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	agentYAML := func(db string) string {
		return fmt.Sprintf("server: mta-send\ntags: {dc: fra1}\nstate_dir: %s/state\napi: {enabled: false}\nlisten: {enabled: false}\n"+
			"sinks: {influx: {enabled: true, url: %s, bucket: %s/autogen, buffer: {min_backoff: 100ms}}}\n", dir, influx.URL, db)
	}
	writeTestFile(t, cfgPath, agentYAML("impact"))
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	files := impactFiles(t, at, 0.2, 0.1)
	args := append([]string{"-config", cfgPath, "-at", at.Format(time.RFC3339), "-focus", "domain=gmail.com", "-send"}, files...)

	out, stderr := runImpact(t, 0, args...)
	t.Logf("stderr:\n%s", stderr)
	if !strings.Contains(out, "isp google") {
		t.Errorf("no table on stdout:\n%s", out)
	}
	lines := decodeLinesOf(t, args)
	n := len(lines)
	for _, want := range []string{fmt.Sprintf("impact: %d pmta_impact points sent", n),
		fmt.Sprintf("impact: sink influx: %d points written, 0 refused, 0 dead-lettered, 0 dropped, 0 left queued", n)} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	got := rows(t, influx, "impact", "SELECT * FROM pmta_impact GROUP BY *")
	if len(got) != n {
		t.Fatalf("%d rows in InfluxDB, %d points sent: %v", len(got), n, got)
	}
	var google map[string]string
	for _, r := range got {
		if r["kind"] == "isp" && r["name"] == "google" {
			google = r
		}
	}
	if google == nil || google["verdict"] != "1" || google["touched"] != "no" || google["server"] != "mta-send" ||
		google["dc"] != "fra1" || google["window_s"] != "7200" || google["time"] != fmt.Sprint(at.UnixNano()) {
		t.Errorf("google's row: %v (want verdict 1 at %d)", google, at.UnixNano())
	}
	if want := decodeFind(lines, "isp", "google"); google != nil && google["before_deferral_pct"] != fmt.Sprint(want.fields["before_deferral_pct"]) {
		t.Errorf("before_deferral_pct %s in InfluxDB, %v sent", google["before_deferral_pct"], want.fields["before_deferral_pct"])
	}

	// Again: the same series at the same time, overwritten.
	runImpact(t, 0, args...)
	if again := rows(t, influx, "impact", "SELECT * FROM pmta_impact GROUP BY *"); len(again) != n {
		t.Errorf("%d rows after a rerun, want %d", len(again), n)
	}

	// A database where verdict is a string: InfluxDB refuses the points of
	// that series for good; the others are written; exit 1.
	influx.CreateDatabase("conflict")
	if err := influx.Write("conflict", fmt.Sprintf("pmta_impact,dc=fra1,kind=isp,name=google,server=mta-send,touched=no verdict=\"x\" %d\n", at.UnixNano())); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, cfgPath, agentYAML("conflict"))
	_, stderr = runImpact(t, 1, args...)
	t.Logf("stderr, a conflicting field type:\n%s", stderr)
	if !strings.Contains(stderr, "impact: sink influx: ") || !strings.Contains(stderr, "did not take") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// decodeLinesOf runs impact with args and -format lines instead of -send
// and decodes what it prints.
func decodeLinesOf(t *testing.T, args []string) []lpPoint {
	t.Helper()
	var a []string
	for _, x := range args {
		if x != "-send" {
			a = append(a, x)
		}
	}
	out, _ := runImpact(t, 0, append([]string{"-format", "lines"}, a...)...)
	return decodeLines(t, []byte(out))
}

func decodeFind(pts []lpPoint, kind, name string) lpPoint {
	for _, p := range pts {
		if p.tags["kind"] == kind && p.tags["name"] == name {
			return p
		}
	}
	return lpPoint{fields: map[string]any{}}
}

// impactAgent is an agent that watches a PowerMTA configuration and tails
// the accounting files of logs, with impact_window 3s and impact_every
// 1s, printing its points; the test stops it at its end or with stop.
type impactAgent struct {
	out  *syncBuffer
	rec  *logtest.Recorder
	stop func()
}

func startImpactAgent(t *testing.T, dir, pmtaConf, logs string) *impactAgent {
	t.Helper()
	agentConf := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, agentConf, fmt.Sprintf(`server: impact-mta
state_dir: %s
self_interval: 1h
listen: {enabled: false}
api: {enabled: false}
acct: {enabled: true, globs: [%s/*.csv]}
pmta: {config: %s, watch_interval: 100ms}
sinks: {stdout: {enabled: true}}
`, filepath.Join(dir, "state"), logs, pmtaConf))
	cfg, err := loadConfig(agentConf)
	if err != nil {
		t.Fatal(err)
	}
	// Shorter than check-config allows: a test's minute is seconds.
	cfg.PMTA.ImpactWindow, cfg.PMTA.ImpactEvery = 3*time.Second, time.Second
	a := &impactAgent{out: &syncBuffer{}, rec: logtest.New()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, a.out, a.rec.Logger()) }()
	stopped := false
	a.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(a.stop)
	waitUntil(t, 20*time.Second, "the watcher's first reading", func() bool { return a.rec.Count("PowerMTA configuration read") > 0 })
	return a
}

// impactPoints decodes the pmta_impact lines the agent printed.
func (a *impactAgent) impactPoints(t *testing.T) []lpPoint {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(a.out.String(), "\n") {
		if strings.HasPrefix(l, "pmta_impact,") {
			lines = append(lines, l)
		}
	}
	return decodeLines(t, []byte(strings.Join(lines, "\n")+"\n"))
}

// writeImpactRecords writes 600 records a second for window seconds before
// at, with google deferring 40 %, and after, 2 %.
func writeImpactRecords(t *testing.T, logs string, at time.Time, window int) {
	t.Helper()
	s := sim.New(sim.Options{Seed: 14, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, Types: "d,b,t", LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeferralRate("google", 0.4)
	for i := -window; i < window; i++ {
		if i == 0 {
			s.SetDeferralRate("google", 0.02)
		}
		if err := w.Write(600, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkGoogleBetter finds google's and gmail.com's points at at, better.
func checkGoogleBetter(t *testing.T, pts []lpPoint, at time.Time) {
	t.Helper()
	g := findPoint(t, pts, "isp", "google")
	d := findPoint(t, pts, "domain", "gmail.com")
	for _, p := range []lpPoint{g, d} {
		if !p.time.Equal(at) || p.fields["verdict"] != impact.CodeBetter || p.fields["window_s"] != int64(3) || p.tags["server"] != "impact-mta" {
			t.Errorf("point %+v: want verdict 1 (better), window_s 3, at %s", p, at)
		}
	}
	if g.tags["touched"] != "no" || d.tags["touched"] != "yes" {
		t.Errorf("touched: google %q, gmail.com %q", g.tags["touched"], d.tags["touched"])
	}
}

func finalsRecorded(t *testing.T, stateDir string) string {
	b, _ := os.ReadFile(impactStatePath(stateDir))
	return string(b)
}

// The running agent measures the impact of a change it sees by itself:
// provisional points every impact_every while the after window fills, the
// final ones once it has passed, each at the change's time (so each
// overwrites the last), a headline logged for each run; the final's
// durability is recorded beside the journal.
func TestImpactInRunningAgent(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	pmtaConf := filepath.Join(dir, "pmta-config")
	conf := func(rate string) string {
		return fmt.Sprintf("<domain gmail.com>\n  max-msg-rate %s\n</domain>\n", rate)
	}
	writeTestFile(t, pmtaConf, conf("250/h"))
	a := startImpactAgent(t, dir, pmtaConf, logs)
	writeTestFile(t, pmtaConf, conf("500/h"))

	stateDir := filepath.Join(dir, "state")
	var changes []impact.Change
	waitUntil(t, 20*time.Second, "the change in the journal", func() bool {
		changes, _ = journalChanges(stateDir)
		return len(changes) > 0
	})
	at := changes[0].Time.Truncate(time.Second).Add(time.Second)
	writeImpactRecords(t, logs, at, 3)

	waitUntil(t, 30*time.Second, "the final run", func() bool { return a.rec.Count("run=final") > 0 })
	waitUntil(t, 10*time.Second, "the final recorded as made", func() bool {
		return strings.Contains(finalsRecorded(t, stateDir), fmt.Sprintf(`{"at":%d,"window_s":3}`, at.Unix()))
	})
	a.stop()
	pts := a.impactPoints(t)
	checkGoogleBetter(t, pts, at)
	google := 0
	for _, p := range pts {
		if p.tags["kind"] == "isp" && p.tags["name"] == "google" {
			google++
		}
	}
	if google < 2 || a.rec.Count("run=provisional") == 0 {
		t.Errorf("google's point came %d times, %d provisional runs: want provisional runs before the final\n%s",
			google, a.rec.Count("run=provisional"), grepLines(a.rec.String(), "change impact"))
	}
	headline := grepLines(a.rec.String(), "run=final")
	t.Logf("\n%s", grepLines(a.rec.String(), "change impact"))
	for _, want := range []string{"change=<domain gmail.com> max-msg-rate 250/h → 500/h", "google=better", "touched=domain gmail.com=better", "effect_absent=false"} {
		if !strings.Contains(headline, want) {
			t.Errorf("the final headline lacks %q:\n%s", want, headline)
		}
	}
}

// A change of the journal whose window ended while the agent was down gets
// one final run at start; once made, a restart does not make it again.
func TestImpactFinalAtStart(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	pmtaConf := filepath.Join(dir, "pmta-config")
	writeTestFile(t, pmtaConf, "<domain gmail.com>\n  max-msg-rate 500/h\n</domain>\n")
	stateDir := filepath.Join(dir, "state")
	changed := time.Now().Add(-20 * time.Second).UTC()
	at := changed.Truncate(time.Second).Add(time.Second)
	line, _ := json.Marshal(confwatch.Entry{Time: changed, Block: "<domain gmail.com>", Directive: "max-msg-rate",
		Change: "<domain gmail.com> max-msg-rate 250/h → 500/h", File: pmtaConf, Line: 2})
	if err := os.MkdirAll(filepath.Dir(confwatch.JournalPath(stateDir)), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, confwatch.JournalPath(stateDir), string(line)+"\n")
	writeImpactRecords(t, logs, at, 3)

	a := startImpactAgent(t, dir, pmtaConf, logs)
	waitUntil(t, 30*time.Second, "the final run at start", func() bool { return a.rec.Count("run=final") > 0 })
	waitUntil(t, 10*time.Second, "the final recorded as made", func() bool {
		return strings.Contains(finalsRecorded(t, stateDir), fmt.Sprintf(`{"at":%d,"window_s":3}`, at.Unix()))
	})
	a.stop()
	checkGoogleBetter(t, a.impactPoints(t), at)
	if a.rec.Count("window ended while the agent was not running") != 1 || a.rec.Count("run=provisional") != 0 || a.rec.Count("run=final") != 1 {
		t.Errorf("want one final run and no provisional one:\n%s", grepLines(a.rec.String(), "impact"))
	}

	b := startImpactAgent(t, dir, pmtaConf, logs)
	time.Sleep(time.Second) // the runner's first step is at its start: it has had time
	b.stop()
	if n := b.rec.Count("change impact"); n != 0 || len(b.impactPoints(t)) != 0 {
		t.Errorf("after a restart: %d runs, %d points; the final was made already", n, len(b.impactPoints(t)))
	}
}
