package verdict

// Adversarial probes of the window and the judgement: hostile counts,
// intervals out of step, gaps of hours, statistical edge cases, memory over
// a long run and determinism. TestAdvHeld* show behaviour that held;
// TestAdvFixed* failed before the fix next to them in verdict.go.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// finite fails the test for a field of pts that is NaN or ±Inf, or for a
// field that is neither int64 nor float64.
func finite(t *testing.T, pts []agent.Point) {
	t.Helper()
	for _, p := range pts {
		for _, f := range p.Fields {
			switch v := f.Value.(type) {
			case int64:
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: field %s = %v", line(p), f.Key, v)
				}
			default:
				t.Fatalf("%s: field %s is a %T", line(p), f.Key, f.Value)
			}
		}
	}
}

// rowsOf indexes a result's rows by "pool" (the group's row) or source IP.
func rowsOf(res Result) map[string]Row {
	rows := map[string]Row{}
	for _, r := range res.Rows {
		name := r.SourceIP
		if name == "" {
			name = "pool"
		}
		rows[name] = r
	}
	return rows
}

// TestAdvHeldExtremeRates: 0 % and 100 % rates, one IP, identical IPs (MAD
// 0), an empty rest of the pool: no NaN or Inf reaches a point, and the
// verdicts are the README's.
func TestAdvHeldExtremeRates(t *testing.T) {
	cfg := DefaultConfig()
	cases := []struct {
		name string
		ips  []ip
		want map[string]Verdict
	}{
		{"all at 0 %", []ip{{"a", 1000, 0}, {"b", 1000, 0}, {"c", 1000, 0}}, map[string]Verdict{"pool": OK, "a": OK}},
		{"all at 100 %", []ip{{"a", 1000, 1000}, {"b", 1000, 1000}, {"c", 1000, 1000}}, map[string]Verdict{"pool": PoolWide, "a": PoolWide}},
		// The rest of the pool at 0 %, the IP at 100 %: pooled rate 1/3,
		// score 0.6745 × 100 / 0.5, z finite.
		{"one at 100 % among 0 %", []ip{{"a", 1000, 0}, {"b", 1000, 0}, {"x", 1000, 1000}}, map[string]Verdict{"pool": IPSpecific, "x": IPSpecific, "a": OK}},
		// Every IP equal (MAD 0, floored): nobody is an outlier.
		{"identical IPs above the threshold", []ip{{"a", 500, 100}, {"b", 500, 100}, {"c", 500, 100}, {"d", 500, 100}}, map[string]Verdict{"pool": PoolWide, "a": PoolWide}},
		{"identical IPs below the threshold", []ip{{"a", 500, 5}, {"b", 500, 5}, {"c", 500, 5}, {"d", 500, 5}}, map[string]Verdict{"pool": OK, "a": OK}},
		// One IP alone, at 100 %: no rest of the pool (z 0), no peers to
		// compare it with: too few, whatever its rate.
		{"one IP at 100 %", []ip{{"x", 5000, 5000}}, map[string]Verdict{"pool": TooFew, "x": TooFew}},
		{"one IP at 0 %", []ip{{"x", 5000, 0}}, map[string]Verdict{"pool": TooFew, "x": TooFew}},
		// Two at 100 %: the pooled rate is 100 %, the z-test's se 0.
		{"two at 100 %", []ip{{"a", 300, 300}, {"b", 300, 300}}, map[string]Verdict{"pool": PoolWide, "a": PoolWide, "b": PoolWide}},
		{"one attempt each", []ip{{"a", 1, 1}, {"b", 1, 0}}, map[string]Verdict{"pool": TooFew, "a": TooFew}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWindow(cfg)
			counts := map[Key]Counts{}
			for _, x := range c.ips {
				counts[Key{"google", "pg", x.name}] = Counts{Attempts: x.attempts, Deferred: x.deferred, Bounced: x.attempts - x.deferred}
			}
			res := w.Observe(0, 60, counts)
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			finite(t, w.Points(res[0]))
			rows := rowsOf(res[0])
			for name, want := range c.want {
				if got := rows[name].Verdict; got != want {
					t.Errorf("%s: %s, want %s (%+v)", name, got, want, rows[name])
				}
			}
			if len(c.ips) == 1 && rows[c.ips[0].name].Z != 0 {
				t.Errorf("z against an empty rest of the pool: %v, want 0", rows[c.ips[0].name].Z)
			}
		})
	}
}

// TestAdvHeldRandomCountsAreFinite: thousands of random groups, counts from
// 1 to billions, pools of 1 to 40 IPs, random settings: every field of
// every point is finite, deferral and bounce percentages within [0, 100],
// and an IP is flagged only with the volume.
func TestAdvHeldRandomCountsAreFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	for round := range 2000 {
		cfg := DefaultConfig()
		cfg.MinAttempts = 1 + r.Int64N(500)
		cfg.WarnPct = 0.01 + r.Float64()*99.98
		w := NewWindow(cfg)
		counts := map[Key]Counts{}
		n := 1 + r.IntN(40)
		for i := range n {
			var a int64
			switch r.IntN(4) {
			case 0:
				a = 1 + r.Int64N(10)
			case 1:
				a = 1 + r.Int64N(1000)
			case 2:
				a = 1 + r.Int64N(1<<34) // beyond uint32: clamped per step
			default:
				a = cfg.MinAttempts
			}
			var d int64
			switch r.IntN(3) {
			case 0:
				d = 0
			case 1:
				d = a
			default:
				d = r.Int64N(a + 1)
			}
			counts[Key{"isp", "p", fmt.Sprint(i)}] = Counts{Attempts: a, Deferred: d, Bounced: a - d}
		}
		res := w.Observe(0, 60, counts)
		pts := w.Points(res[0])
		finite(t, pts)
		for _, row := range res[0].Rows {
			if row.DeferralPct < 0 || row.DeferralPct > 100 || row.BouncePct < 0 || row.BouncePct > 100 {
				t.Fatalf("round %d: %+v", round, row)
			}
			if row.SourceIP != "" && row.Attempts < cfg.MinAttempts && row.Verdict != TooFew {
				t.Fatalf("round %d: %+v judged under the minimum volume %d", round, row, cfg.MinAttempts)
			}
			if row.Attempts > math.MaxUint32 && row.SourceIP != "" {
				t.Fatalf("round %d: one step of an IP holds %d attempts, more than the uint32 clamp", round, row.Attempts)
			}
		}
	}
}

// TestAdvHeldClampPerStep: attempts beyond uint32 in a step are clamped per
// step, and a day of such steps sums without overflow (1440 × 2³² fits an
// int64 many times over); the deferral share survives the clamp when both
// are clamped.
func TestAdvHeldClampPerStep(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window, cfg.Every = MaxWindow, time.Minute
	w := NewWindow(cfg)
	k := Key{"google", "pg", "10.0.0.1"}
	var last Result
	for s := range int64(maxBuckets) {
		res := w.Observe(s*60, s*60+60, map[Key]Counts{k: {Attempts: math.MaxInt64, Deferred: math.MaxInt64 / 2, Bounced: -5}})
		last = res[len(res)-1]
	}
	row := rowsOf(last)[k.SourceIP]
	if want := int64(maxBuckets) * math.MaxUint32; row.Attempts != want || row.Deferred != want || row.Bounced != 0 {
		t.Fatalf("a day of clamped steps: %+v, want %d attempts and deferrals, 0 bounces", row.Counts, want)
	}
	finite(t, w.Points(last))
	if last.WindowS != int64(MaxWindow/time.Second) {
		t.Fatalf("window_s %d", last.WindowS)
	}
}

// TestAdvFixedInconsistentCounts: Observe is exported and takes any counts;
// deferrals or bounces beyond the attempts (a caller's bug, or a sum that
// wrapped) made the pooled rate of the z-test above 1, its standard error
// the square root of a negative number and z NaN in the point. The window
// now takes at most the attempts as deferrals and bounces.
func TestAdvFixedInconsistentCounts(t *testing.T) {
	w := NewWindow(DefaultConfig())
	res := w.Observe(0, 60, map[Key]Counts{
		{"google", "pg", "10.0.0.1"}: {Attempts: 300, Deferred: 9000, Bounced: 9000},
		{"google", "pg", "10.0.0.2"}: {Attempts: 300, Deferred: 3},
		{"google", "pg", "10.0.0.3"}: {Attempts: 300, Deferred: 3},
	})
	finite(t, w.Points(res[0]))
	for _, row := range res[0].Rows {
		if row.Deferred > row.Attempts || row.Bounced > row.Attempts || row.DeferralPct > 100 || row.BouncePct > 100 {
			t.Errorf("%+v: more deferrals or bounces than attempts", row)
		}
	}
}

// TestAdvFixedIntervalsOutOfStep: Observe wants closed intervals in
// ascending order, and the tailer keeps that order — until a tailer that
// takes a window on at a reload starts afresh (a corrupt checkpoint) and
// reads the files from the beginning. An interval before the window's
// current step was added to the current step (counted twice, at the wrong
// time) or, once that step was sealed, appended as a bucket out of order:
// a result whose time went back, whose counts held the interval twice.
// Such an interval is now left out.
func TestAdvFixedIntervalsOutOfStep(t *testing.T) {
	w := NewWindow(DefaultConfig())
	k := Key{"google", "pg", "10.0.0.1"}
	c := map[Key]Counts{k: {Attempts: 100, Deferred: 10}}
	var results []Result
	for s := range int64(10) { // ten steps of 60 s, one interval each
		results = append(results, w.Observe(600+60*s, 660+60*s, c)...)
	}
	// The same minutes again, as a re-read from the beginning would give
	// them, then one new minute.
	for s := range int64(10) {
		results = append(results, w.Observe(600+60*s, 660+60*s, c)...)
	}
	results = append(results, w.Observe(1200, 1260, c)...)
	// Into an open step: an interval of the step before.
	results = append(results, w.Observe(1260, 1270, c)...)
	results = append(results, w.Observe(1250, 1260, c)...)
	results = append(results, w.Observe(1310, 1320, c)...)
	var prev int64
	for _, r := range results {
		if at := r.At.Unix(); at <= prev {
			t.Fatalf("a result at %d after one at %d", at, prev)
		}
		prev = r.At.Unix()
	}
	last := results[len(results)-1]
	if last.At.Unix() != 1320 {
		t.Fatalf("last result at %d, want 1320", last.At.Unix())
	}
	// The window [420, 1320): the minutes 600 to 1260 once each (12 of
	// them) and the interval [1260, 1270) and [1310, 1320).
	if got := rowsOf(last)[k.SourceIP].Attempts; got != 13*100 {
		t.Fatalf("the window holds %d attempts, want 1300: intervals out of step counted again", got)
	}
}

// TestAdvHeldGapOfHours: records stop for hours and come back: the step
// before the gap is judged when the first interval after it arrives, the
// first step after it no longer holds anything from before, the keys of
// before are released and their alarms reported over.
func TestAdvHeldGapOfHours(t *testing.T) {
	cfg := DefaultConfig()
	w := NewWindow(cfg)
	bad := map[Key]Counts{
		{"google", "pg", "10.0.0.1"}: {Attempts: 1000, Deferred: 20},
		{"google", "pg", "10.0.0.2"}: {Attempts: 1000, Deferred: 20},
		{"google", "pg", "10.0.0.3"}: {Attempts: 1000, Deferred: 20},
		{"google", "pg", "10.0.0.4"}: {Attempts: 1000, Deferred: 500},
	}
	t0 := int64(1_700_000_040)
	if r := w.Observe(t0, t0+10, bad); len(r) != 0 {
		t.Fatal("a sixth of a step completed it")
	}
	later := map[Key]Counts{{"yahoo", "py", "10.0.9.1"}: {Attempts: 5}}
	res := w.Observe(t0+3*3600, t0+3*3600+60, later)
	if len(res) != 2 || res[0].At.Unix() != t0+60 || res[1].At.Unix() != t0+3*3600+60 {
		t.Fatalf("results %+v", res)
	}
	if v := rowsOf(res[0])["10.0.0.4"].Verdict; v != IPSpecific {
		t.Fatalf("the step before the gap: %s", v)
	}
	after := res[1]
	if len(after.Rows) != 2 || after.Rows[0].ISP != "yahoo" || after.WindowS != int64(cfg.Window/time.Second) {
		t.Fatalf("after the gap: %+v", after)
	}
	if len(after.Changes) != 2 || after.Changes[0].From != IPSpecific || after.Changes[0].Verdict != TooFew {
		t.Fatalf("changes after the gap %+v, want the pool and the IP over", after.Changes)
	}
	if s := w.Stats(); s.Keys != 1 || len(w.buckets) != 1 || len(w.last) != 2 {
		t.Fatalf("after the gap: %+v, %d buckets, %d last", s, len(w.buckets), len(w.last))
	}
}

// TestAdvHeldLongRunMemory: two hours of steps, each with 500 source IPs
// never seen before (a churn no server has): the window holds only the keys
// of its own steps, reuses their indices and forgets the alarms of rows
// gone.
func TestAdvHeldLongRunMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window, cfg.Every = 5*time.Minute, time.Minute
	w := NewWindow(cfg)
	const perStep = 500
	steps := int64(5)
	for s := range int64(120) {
		counts := map[Key]Counts{}
		for i := range perStep {
			// A fifth of the IPs defer at 60 % in groups of their own, so
			// that alarms come and go.
			d := int64(0)
			if i%5 == 0 {
				d = 180
			}
			counts[Key{fmt.Sprint("isp", i%7), fmt.Sprint("pool", i%3), fmt.Sprint(s, ".", i)}] = Counts{Attempts: 300, Deferred: d}
		}
		w.Observe(s*60, s*60+60, counts)
		if held := w.Stats().Keys; int64(held) > perStep*min(s+1, steps) {
			t.Fatalf("step %d: %d keys held", s, held)
		}
	}
	if n := len(w.keys); n > perStep*int(steps)+perStep {
		t.Fatalf("the key slice grew to %d over two hours", n)
	}
	if n := len(w.last); n > perStep*int(steps)+21 {
		t.Fatalf("%d alarms remembered, more than the rows of the window", n)
	}
	if len(w.buckets) > int(steps) || len(w.idx)+len(w.free) != len(w.keys) {
		t.Fatalf("%d buckets, %d keys + %d free of %d", len(w.buckets), len(w.idx), len(w.free), len(w.keys))
	}
}

// TestAdvHeldEmptyPoolOtherISPAndHostileTags: a group without a pool has no
// pool tag, ISP "other" is a group like any, and values the window is given
// are written as they are (the aggregator made them safe; see the acct
// probes).
func TestAdvHeldEmptyPoolOtherISPAndHostileTags(t *testing.T) {
	w := NewWindow(DefaultConfig())
	long := strings.Repeat("9", 300)
	res := w.Observe(0, 60, map[Key]Counts{
		{"other", "", "10.0.0.1"}: {Attempts: 500, Deferred: 5},
		{"other", "", "10.0.0.2"}: {Attempts: 500, Deferred: 400},
		{"other", "", long}:       {Attempts: 500, Deferred: 5},
		{"", "p", "10.0.0.3"}:     {Attempts: 500, Deferred: 5},
	})
	pts := w.Points(res[0])
	finite(t, pts)
	for _, p := range pts {
		if v, ok := p.TagValue("pool"); ok && v == "" {
			t.Fatalf("an empty pool tag: %s", line(p))
		}
	}
	rows := rowsOf(res[0])
	if rows["10.0.0.2"].Verdict != IPSpecific || rows[long].Verdict != OK {
		t.Fatalf("rows %+v", rows)
	}
}

// windowLines runs the same steps through a new window and returns its
// points as line protocol, in the order made.
func windowLines(steps []map[Key]Counts) string {
	w := NewWindow(DefaultConfig())
	var b strings.Builder
	for s, counts := range steps {
		for _, r := range w.Observe(int64(s)*60, int64(s)*60+60, counts) {
			b.Write(agent.LineProtocol(w.Points(r)))
			for _, c := range r.Changes {
				fmt.Fprintf(&b, "change %v %s→%s\n", c.Key, c.From, c.Verdict)
			}
		}
	}
	return b.String()
}

// TestAdvHeldDeterministic: the same counts give the same points, in the
// same order, and the same changes.
func TestAdvHeldDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var steps []map[Key]Counts
	for range 20 {
		counts := map[Key]Counts{}
		for i := range 300 {
			a := 50 + r.Int64N(400)
			counts[Key{fmt.Sprint("isp", i%4), fmt.Sprint("p", i%6), fmt.Sprint("10.0.", i)}] = Counts{Attempts: a, Deferred: r.Int64N(a/3 + 1), Bounced: r.Int64N(3)}
		}
		steps = append(steps, counts)
	}
	want := windowLines(steps)
	for range 5 {
		if got := windowLines(steps); got != want {
			t.Fatal("the same counts gave other points")
		}
	}
}

// TestAdvFixedFullWindowDeterministic: when a step brings more new keys
// than the window has room for (MaxKeys), the keys let in depended on the
// order Go's map iteration happened to give: the same records gave other
// points from run to run. They are now let in by volume, then by key.
func TestAdvFixedFullWindowDeterministic(t *testing.T) {
	step := map[Key]Counts{}
	for i := range MaxKeys + 500 {
		// The last 500 keys carry the volume: they are the ones to keep.
		a := int64(1)
		if i >= MaxKeys {
			a = 1000
		}
		step[Key{"google", fmt.Sprint("p", i%50), fmt.Sprintf("10.%d.%d", i>>8, i&255)}] = Counts{Attempts: a}
	}
	steps := []map[Key]Counts{step}
	want := windowLines(steps)
	for range 3 {
		if got := windowLines(steps); got != want {
			t.Fatal("the same counts gave other points when the window was full")
		}
	}
	w := NewWindow(DefaultConfig())
	w.Observe(0, 60, step)
	if s := w.Stats(); s.Dropped != 500 || s.Keys != MaxKeys {
		t.Fatalf("full window: %+v, want the 500 smallest keys dropped", s)
	}
}

// TestAdvHeldResetAndConfig: Reset empties the window but keeps its
// settings and counts nothing as dropped.
func TestAdvHeldResetAndConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinAttempts = 7
	w := NewWindow(cfg)
	w.Observe(0, 60, map[Key]Counts{{"a", "b", "c"}: {Attempts: 9}})
	w.Reset()
	if w.Config() != cfg || w.Stats() != (Stats{}) || len(w.last) != 0 || w.started {
		t.Fatalf("after Reset: %+v %+v", w.Config(), w.Stats())
	}
}

// TestAdvHeldValidateHostile: settings that would make the window's
// arithmetic meaningless are refused.
func TestAdvHeldValidateHostile(t *testing.T) {
	for _, c := range []Config{
		{Enabled: true, Window: time.Minute, Every: -time.Minute, MinAttempts: 1, WarnPct: 5},
		{Enabled: true, Window: time.Minute, Every: time.Minute, MinAttempts: 1, WarnPct: math.Inf(1)},
		{Enabled: true, Window: time.Minute, Every: time.Minute, MinAttempts: 1, WarnPct: 0},
		{Enabled: true, Window: time.Minute, Every: time.Minute, MinAttempts: math.MinInt64, WarnPct: 5},
		{Enabled: true, Window: math.MaxInt64, Every: time.Minute, MinAttempts: 1, WarnPct: 5},
		{Enabled: true, Window: time.Minute, Every: 2 * time.Minute, MinAttempts: 1, WarnPct: 5},
	} {
		if errs := c.Validate(10 * time.Second); len(errs) == 0 {
			t.Errorf("%+v passed", c)
		}
	}
}

// TestAdvFixedStepSumSaturates: two intervals of one step whose attempts
// add up past the largest int64 wrapped to a negative sum, which the clamp
// made 0 attempts: the key was held with nothing, its deferrals lost. The
// sum now stops at the largest int64 and the step is clamped as any.
func TestAdvFixedStepSumSaturates(t *testing.T) {
	w := NewWindow(DefaultConfig())
	k := Key{"google", "pg", "10.0.0.1"}
	big := map[Key]Counts{k: {Attempts: math.MaxInt64, Deferred: math.MaxInt64, Bounced: math.MinInt64}}
	w.Observe(0, 10, big)
	res := w.Observe(50, 60, big)
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	row := rowsOf(res[0])[k.SourceIP]
	if row.Attempts != math.MaxUint32 || row.Deferred != math.MaxUint32 || row.Bounced != 0 {
		t.Fatalf("%+v, want the step clamped to 2³²−1 attempts and deferrals", row.Counts)
	}
	finite(t, w.Points(res[0]))
}

// TestAdvFixedFullWindowMakesRoomFirst: with the window full, the keys of
// the step leaving the window were released only after the new step's keys
// had been refused: a window whose keys all change at once dropped a whole
// step although it had room for it. The step leaving goes first now.
func TestAdvFixedFullWindowMakesRoomFirst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window = cfg.Every // one step: each step replaces the one before
	w := NewWindow(cfg)
	for s := range int64(3) {
		counts := map[Key]Counts{}
		for i := range MaxKeys {
			counts[Key{"google", "pg", fmt.Sprintf("%d/%d", s, i)}] = Counts{Attempts: 2}
		}
		w.Observe(s*60, s*60+60, counts)
	}
	if s := w.Stats(); s.Dropped != 0 || s.Keys != MaxKeys {
		t.Fatalf("%+v: keys refused while the keys leaving made room", s)
	}
}
