package impact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
)

// writeAcct writes an accounting file with, for each second of [from, to),
// 10 records to gmail.com, of which deferred(second) are t records and
// the rest d, and 10 to yahoo.com, one of them deferred.
func writeAcct(t *testing.T, path string, from, to time.Time, deferred func(time.Time) int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("type,timeLogged,rcpt\n")
	for ts := from; ts.Before(to); ts = ts.Add(time.Second) {
		for i := range 10 {
			typ := "d"
			if i < deferred(ts) {
				typ = "t"
			}
			fmt.Fprintf(&b, "%s,%d,u%d@gmail.com\n", typ, ts.Unix(), i)
			typ = "d"
			if i == 0 {
				typ = "t"
			}
			fmt.Fprintf(&b, "%s,%d,u%d@yahoo.com\n", typ, ts.Unix(), i)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clock is a settable time for a stepped Runner.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// batches collects what a Runner emits; durable marks them as the sinks'
// queues would.
type batches struct {
	got []agent.Batch
}

func (b *batches) emit(x agent.Batch) { b.got = append(b.got, x) }

func (b *batches) durable() {
	for _, x := range b.got {
		if x.Done != nil {
			x.Done()
		}
	}
}

// verdictOf returns the verdict field of the point with the tags kind and
// name, and false without one.
func verdictOf(pts []agent.Point, kind, name string) (int64, bool) {
	for _, p := range pts {
		k, _ := p.TagValue("kind")
		n, _ := p.TagValue("name")
		if k == kind && n == name {
			v, _ := p.FieldValue("verdict")
			return v.(int64), true
		}
	}
	return 0, false
}

var change = time.Date(2024, 1, 15, 10, 0, 0, 400_000_000, time.UTC) // seen 0.4 s into the second

// newTestRunner returns a Runner over one file around change (gmail.com 50 %
// deferred before, 10 % after), a minute either side, stepped by c.
func newTestRunner(t *testing.T, c *clock, dir string, journal []Change, rec *logtest.Recorder) *Runner {
	t.Helper()
	at := change.Truncate(time.Second).Add(time.Second)
	file := filepath.Join(dir, "acct.csv")
	if _, err := os.Stat(file); err != nil {
		writeAcct(t, file, at.Add(-time.Minute), at.Add(time.Minute), func(ts time.Time) int {
			if ts.Before(at) {
				return 5
			}
			return 1
		})
	}
	r, err := NewRunner(RunnerConfig{
		Window: time.Minute, Every: 20 * time.Second, Server: "mta01",
		Files:     func() ([]string, error) { return filepath.Glob(filepath.Join(dir, "*.csv")) },
		ISP:       agent.NewISPMap(nil),
		Journal:   func() ([]Change, error) { return journal, nil },
		StatePath: filepath.Join(dir, "state", "impact.json"),
		Now:       c.Now,
	}, rec.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A change seen while running: provisional runs every 20 s while the
// after window fills, the final one a minute after the change (and a
// second for the records still being written), all at the change's
// second; the final's durability is recorded, and a restart does not make
// it again.
func TestRunnerProvisionalThenFinal(t *testing.T) {
	dir := t.TempDir()
	at := change.Truncate(time.Second).Add(time.Second)
	c := &clock{now: change}
	rec := logtest.New()
	r := newTestRunner(t, c, dir, nil, rec)
	ctx := context.Background()
	var out batches
	r.Start()
	r.Add(Change{Time: change, Block: "<domain gmail.com>", Text: "<domain gmail.com> max-msg-rate 250/h → 500/h"},
		Change{Time: change.Add(1), Block: "<virtual-mta-pool pool-gmail>", Text: "<virtual-mta-pool pool-gmail> added"})
	next := r.Step(ctx, out.emit)
	if len(out.got) != 0 || !next.Equal(at.Add(20*time.Second)) {
		t.Fatalf("at the change: %d batches, next run %s, want none and %s", len(out.got), next, at.Add(20*time.Second))
	}
	for i, step := range []struct {
		now  time.Time
		next time.Time
	}{
		{at.Add(20 * time.Second), at.Add(40 * time.Second)},
		{at.Add(45 * time.Second), at.Add(61 * time.Second)}, // late: the next multiple, then the final
		{at.Add(61 * time.Second), time.Time{}},
	} {
		c.Set(step.now)
		if next := r.Step(ctx, out.emit); !next.Equal(step.next) {
			t.Errorf("step %d: next run %s, want %s", i, next, step.next)
		}
		if len(out.got) != i+1 {
			t.Fatalf("step %d: %d batches, want %d", i, len(out.got), i+1)
		}
	}
	for i, b := range out.got {
		if (b.Done != nil) != (i == 2) {
			t.Errorf("batch %d: Done set %v; only the final's is", i, b.Done != nil)
		}
		for _, p := range b.Points {
			if !p.Time.Equal(at) || p.Measurement != Measurement {
				t.Errorf("batch %d: %s at %s, want %s at %s", i, p.Measurement, p.Time, Measurement, at)
			}
		}
	}
	final := out.got[2].Points
	if v, ok := verdictOf(final, "isp", "google"); !ok || v != CodeBetter {
		t.Errorf("google: verdict %d (%v), want better", v, ok)
	}
	if v, ok := verdictOf(final, "domain", "gmail.com"); !ok || v != CodeBetter {
		t.Errorf("the touched domain: verdict %d (%v), want better", v, ok)
	}
	if _, ok := verdictOf(final, "pool", "pool-gmail"); !ok {
		t.Error("no row for the second change's pool")
	}
	if v, _ := verdictOf(final, "isp", "yahoo"); v != CodeNoChange {
		t.Errorf("yahoo: verdict %d, want no change", v)
	}
	if n := rec.Count("change impact"); n != 3 || rec.Count("run=final") != 1 || rec.Count("run=provisional") != 2 {
		t.Errorf("%d headline lines:\n%s", n, rec)
	}
	for _, s := range []string{"isps=google=better, yahoo=no change", "touched=domain gmail.com=better, pool pool-gmail=too few",
		"change=<domain gmail.com> max-msg-rate 250/h → 500/h; <virtual-mta-pool pool-gmail> added", "effect_absent=false"} {
		if rec.Count(s) == 0 {
			t.Errorf("no %q in the log:\n%s", s, rec)
		}
	}

	// Not durable yet: nothing recorded. Durable: recorded at the next step.
	state := filepath.Join(dir, "state", "impact.json")
	if _, err := os.Stat(state); err == nil {
		t.Error("state written before the final was durable")
	}
	out.durable()
	r.Step(ctx, out.emit)
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), fmt.Sprintf(`{"at":%d,"window_s":60}`, at.Unix())) {
		t.Errorf("state %s: %v", b, err)
	}

	// A restart with the change in the journal: nothing to do.
	journal := []Change{{Time: change, Block: "<domain gmail.com>", Text: "x"}}
	r2 := newTestRunner(t, c, dir, journal, logtest.New())
	r2.Start()
	var again batches
	if next := r2.Step(ctx, again.emit); len(again.got) != 0 || !next.IsZero() {
		t.Errorf("after a restart: %d batches, next %s; the final was made", len(again.got), next)
	}
}

// At start, the journal's changes: one whose window ended while the agent
// was down gets its final run at once; one whose window is open is
// scheduled; one whose window ended longer ago than CatchUp is left alone.
func TestRunnerStartFromJournal(t *testing.T) {
	dir := t.TempDir()
	at := change.Truncate(time.Second).Add(time.Second)
	c := &clock{now: at.Add(10 * time.Minute)}
	rec := logtest.New()
	journal := []Change{
		{Time: change.Add(-48 * time.Hour), Text: "long ago"},
		{Time: change, Block: "<domain gmail.com>", Text: "ended while down"},
		{Time: at.Add(9*time.Minute + 30*time.Second), Text: "still open"},
	}
	r := newTestRunner(t, c, dir, journal, rec)
	r.Start()
	var out batches
	next := r.Step(context.Background(), out.emit)
	if len(out.got) != 1 || out.got[0].Done == nil {
		t.Fatalf("%d batches, want the final of the change whose window ended", len(out.got))
	}
	if p := out.got[0].Points; len(p) == 0 || !p[0].Time.Equal(at) {
		t.Errorf("points %v", p)
	}
	if want := at.Add(10*time.Minute + 10*time.Second); !next.Equal(want) {
		t.Errorf("next run %s, want the open one's next provisional at %s", next, want)
	}
	if rec.Count("window ended while the agent was not running") != 1 || rec.Count("long ago") != 0 {
		t.Errorf("log:\n%s", rec)
	}
	if f := r.Stats(); f[0].Value != int64(1) || f[2].Value != int64(1) {
		t.Errorf("stats %v: want 1 run, 1 pending", f)
	}
}

// A final run that cannot read the files is tried again, three times in
// all, then given up; the errors are counted and said.
func TestRunnerFilesFail(t *testing.T) {
	c := &clock{now: change}
	rec := logtest.New()
	r, err := NewRunner(RunnerConfig{Window: time.Minute, ISP: agent.NewISPMap(nil), Now: c.Now,
		Files: func() ([]string, error) { return nil, errors.New("acct.globs: bad pattern") }}, rec.Logger())
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Add(Change{Time: change, Text: "x"})
	var out batches
	next := r.Step(context.Background(), out.emit)
	for i := 0; i < 3 && !next.IsZero(); i++ {
		c.Set(next)
		next = r.Step(context.Background(), out.emit)
	}
	if len(out.got) != 0 || !next.IsZero() {
		t.Errorf("%d batches, next %s", len(out.got), next)
	}
	if r.errs.Load() != 3 || rec.Count("giving up") != 1 || rec.Count("bad pattern") != 3 {
		t.Errorf("errors %d, log:\n%s", r.errs.Load(), rec)
	}
}

// A cancelled context makes no run.
func TestRunnerCancelled(t *testing.T) {
	dir := t.TempDir()
	c := &clock{now: change.Add(time.Hour)}
	r := newTestRunner(t, c, dir, []Change{{Time: change, Text: "x"}}, logtest.New())
	r.Start()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out batches
	if r.Step(ctx, out.emit); len(out.got) != 0 || r.runs.Load() != 0 {
		t.Errorf("%d batches after cancel", len(out.got))
	}
}

func TestNextRun(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		every, since time.Duration
		want         time.Duration
		final        bool
	}{
		{15 * time.Minute, 0, 15 * time.Minute, false},
		{15 * time.Minute, 15 * time.Minute, 30 * time.Minute, false},
		{15 * time.Minute, 100 * time.Minute, 105 * time.Minute, false},
		{15 * time.Minute, 105 * time.Minute, 121 * time.Minute, true}, // 120 is the window's end: the final
		{15 * time.Minute, 3 * time.Hour, 121 * time.Minute, true},
		{0, 0, 121 * time.Minute, true},
		{3 * time.Hour, 0, 121 * time.Minute, true},
		{15 * time.Minute, -time.Hour, 15 * time.Minute, false}, // a clock behind the change
	} {
		r := &Runner{cfg: RunnerConfig{Window: 2 * time.Hour, Every: tc.every}}
		got, final := r.nextRun(at, at.Add(tc.since))
		if !got.Equal(at.Add(tc.want)) || final != tc.final {
			t.Errorf("every %s, %s after: %s (final %v), want %s (%v)", tc.every, tc.since, got.Sub(at), final, tc.want, tc.final)
		}
	}
}

func TestSameSecond(t *testing.T) {
	cs := []Change{{Time: change.Add(-time.Second), Text: "a"}, {Time: change, Text: "b"}, {Time: change.Add(1), Text: "c"}}
	if got := Describe(SameSecond(cs)); got != "b; c" {
		t.Errorf("SameSecond: %q", got)
	}
	if SameSecond(nil) != nil {
		t.Error("SameSecond(nil)")
	}
	f := FocusOfChanges([]Change{{Block: "<domain gmail.com>"}, {Block: "<domain gmail.com>"}, {Block: "<virtual-mta v1>"}}, nil)
	if len(f) != 2 {
		t.Errorf("focus %+v", f)
	}
}

// A change whose final was made — with another window too — is not
// measured again at start, and the state forgets what a restart could no
// longer measure.
func TestRunnerMeasuredOnce(t *testing.T) {
	dir := t.TempDir()
	at := change.Truncate(time.Second).Add(time.Second)
	old := at.Add(-72 * time.Hour)
	state := filepath.Join(dir, "state", "impact.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, fmt.Appendf(nil, `{"finals":[{"at":%d,"window_s":7200},{"at":%d,"window_s":120}]}`, old.Unix(), at.Unix()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: at.Add(10 * time.Minute)}
	r := newTestRunner(t, c, dir, []Change{{Time: change, Text: "made with a 2 min window"}}, logtest.New())
	r.Start()
	var out batches
	if next := r.Step(context.Background(), out.emit); len(out.got) != 0 || !next.IsZero() {
		t.Errorf("%d batches, next %s: the change was measured", len(out.got), next)
	}
	r.saveState()
	if b, err := os.ReadFile(state); err != nil || string(b) != fmt.Sprintf(`{"finals":[{"at":%d,"window_s":120}]}`+"\n", at.Unix()) {
		t.Errorf("state %s, %v: want the 3-day-old final forgotten", b, err)
	}
}
