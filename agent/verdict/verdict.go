// Package verdict says, for every pool an ISP is sent to through, whether
// its deferrals are the pool's or one IP's: the analysis the runbook leaves
// to the operator's eyes ("comparing per-IP deferral rates identifies
// whether a configuration issue affects all IPs in a pool uniformly
// (configuration problem) or just specific IPs (reputation or IP-specific
// problem)").
//
// A Window holds the accounting counts of the last Config.Window per ISP,
// pool and source IP — attempts (d + t + b records), deferrals (t) and
// bounces (b) — and every Config.Every judges each (ISP, pool) group and
// each IP in it:
//
//   - An IP is judged only with at least MinAttempts attempts in the
//     window (else too_few): a handful of records cannot flag it.
//   - An IP is above the warning threshold (WarnPct) when its deferral %
//     is above it by more than chance: a one-sided binomial z of its rate
//     against the threshold of at least 2.58.
//   - ip_specific: the IP's deferral % is above the warning threshold, its
//     robust score 0.6745 × (IP % − median %) / MAD over the group's judged
//     IPs is at least 3.5 (Iglewicz and Hoaglin's outlier cut-off; the MAD
//     is taken as at least 0.5 percentage points, and at least what IPs of
//     the median rate and the judged IPs' median volume differ by chance —
//     0.6745 binomial standard deviations — so that neither a group of
//     equal IPs nor sampling noise makes an outlier), and a one-sided
//     two-proportion z-test of the IP against the rest of its group gives
//     z ≥ 2.58 (p < 0.005): an outlier among its peers, and not by chance;
//     and it defers at least MinRatio (2) times the median of the group's
//     other judged IPs: well above its pool, as a reputation problem is,
//     where sampling noise of IPs deferring alike never is.
//     With two judged IPs the median says nothing: there the IP above the
//     threshold is ip_specific when the other is below it, the z-test
//     holds and it defers at least twice the other's rate.
//   - pool_wide: at least two judged IPs, and more than half of them above
//     the warning threshold — what an ISP throttling the pool, or the
//     configuration, or the content does. The IPs of such a group above
//     the threshold are pool_wide too, unless they are ip_specific.
//   - A group's own verdict: pool_wide, else ip_specific if one of its IPs
//     is, else ok; too_few with fewer than two judged IPs, and so are its
//     IPs then: there is nothing to compare them with.
//
// The window lives in memory; MarshalState and RestoreState carry it from
// a stop to the next start. Without them it fills again after a start, and
// window_s says how much accounting time a verdict covers.
package verdict

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/stats"
)

// Measurement is the verdicts' measurement in the data contract.
const Measurement = "pmta_verdict"

// Verdict is a judgement, as the integer field "verdict" carries it.
type Verdict int

// The verdicts.
const (
	TooFew     Verdict = -1
	OK         Verdict = 0
	IPSpecific Verdict = 1
	PoolWide   Verdict = 2
)

func (v Verdict) String() string {
	switch v {
	case TooFew:
		return "too_few"
	case OK:
		return "ok"
	case IPSpecific:
		return "ip_specific"
	case PoolWide:
		return "pool_wide"
	}
	return "unknown"
}

// Advice is what an operator should look at for a verdict.
func (v Verdict) Advice() string {
	switch v {
	case IPSpecific:
		return "look at this IP's reputation: blocklists, the ISP's postmaster tools, its warm-up"
	case PoolWide:
		return "the whole pool defers: look at the configuration (rates, connections) or the content, or the ISP throttles the pool"
	}
	return ""
}

// The statistics' cut-offs.
const (
	// ScoreCritical is the robust score from which an IP is an outlier.
	ScoreCritical = 3.5
	// ZCritical is the one-sided z from which an IP's excess is more than
	// chance.
	ZCritical = 2.58
	// MADFloorPct is the smallest MAD, in percentage points (see also
	// noiseMAD).
	MADFloorPct = 0.5
	// MinRatio is how many times its pool's median an IP's deferral rate
	// must be to be ip_specific: "well above its pool" in the runbook's
	// sense (a reputation problem is a multiple: 40 % among 3 %), and what
	// keeps sampling noise of a pool deferring alike (one IP 3.5 standard
	// deviations up, a few times in a thousand judgments of four IPs at
	// 8 % or 30 %) from ever reading as one IP's problem.
	MinRatio = 2
)

// Key is one source IP of a pool sending to an ISP.
type Key struct{ ISP, Pool, SourceIP string }

// Counts are the records of a key.
type Counts struct{ Attempts, Deferred, Bounced int64 }

// Row is one judgement: a group's (SourceIP "") or an IP's.
type Row struct {
	Key
	Verdict Verdict
	Counts
	DeferralPct, BouncePct float64
	PoolDeferralPct        float64
	// PoolMedianPct is the median deferral % of the judged IPs; HasMedian
	// says there were any.
	PoolMedianPct float64
	HasMedian     bool
	Score, Z      float64 // IP rows with a median
	IPs, IPsAbove int     // group rows
}

// Scope is "pool" for a group's row, "ip" for an IP's.
func (r *Row) Scope() string {
	if r.SourceIP == "" {
		return "pool"
	}
	return "ip"
}

// Change is a row whose alarm changed: from ok (or too_few, or not seen)
// to ip_specific or pool_wide, from one of those to the other, or back to
// ok or too_few (a row gone from the window is a too_few one).
type Change struct {
	Row
	From Verdict
	At   time.Time // the end of the window it was judged over
}

// Result is what one step of the window gave.
type Result struct {
	At      time.Time // the window's end
	WindowS int64     // accounting seconds the window covers: less than Config.Window only after a start
	Rows    []Row     // groups first, each followed by its IPs
	Changes []Change  // rows whose alarm changed (see Change)
}

// entry is one key's counts within a bucket.
type entry struct {
	idx     int32
	a, d, b uint32
}

// bucket is one step of the window.
type bucket struct {
	start   int64
	entries []entry
}

// Window is the sliding window. It is not safe for concurrent use: one
// tailer owns it at a time.
type Window struct {
	cfg           Config
	every, length int64 // seconds

	cur      map[Key]*Counts // the step being filled
	curStart int64
	curSet   bool
	buckets  []bucket // sealed steps, ascending
	origin   int64    // the start of the first interval seen since a start
	started  bool
	next     int64 // the earliest step an interval may still add to (see Observe)
	seen     int64 // the end of the last interval observed (see Observe)

	// The keys in the window, their sums over the buckets, and free
	// indices; a key whose sums reach zero is released.
	idx  map[Key]int32
	keys []Key
	sums []Counts
	free []int32

	last map[Key]Verdict // the last alarm of each row (group rows: SourceIP "")

	emitted int64 // points made
	dropped int64 // attempts of keys beyond MaxKeys
	current [3]int64
}

// NewWindow returns an empty window; cfg must be valid.
func NewWindow(cfg Config) *Window {
	return &Window{
		cfg:    cfg,
		every:  int64(cfg.Every / time.Second),
		length: int64(cfg.Window / time.Second),
		cur:    map[Key]*Counts{},
		idx:    map[Key]int32{},
		last:   map[Key]Verdict{},
	}
}

// Config returns the window's settings.
func (w *Window) Config() Config { return w.cfg }

// Takes says whether the window can carry on under cfg — the same length
// and steps — and if so takes cfg's thresholds (min_attempts, warn_pct)
// on from its next judgement.
func (w *Window) Takes(cfg Config) bool {
	if !cfg.Enabled || cfg.Window != w.cfg.Window || cfg.Every != w.cfg.Every {
		return false
	}
	w.cfg = cfg
	return true
}

// Observe adds the counts of the accounting interval [start, end) — closed
// intervals in ascending order — and returns the steps it completed: the
// step the interval ends, and one before it if the interval starts a new
// step while the last one was not complete (no records in its last
// intervals).
//
// An interval of a step before the one being filled (or before the end of
// the last step sealed), or one starting before the end of the last
// interval observed, is left out: the window holds that time already, and
// judging it again would count it twice and move the verdicts' time back.
// The tailer closes intervals in order; only a tailer that took a window on
// (a reload, or a restart: RestoreState) and then reads old times again —
// the cuts a crash left to replay, a corrupt checkpoint — comes here.
func (w *Window) Observe(start, end int64, counts map[Key]Counts) []Result {
	var out []Result
	step := floorDiv(start, w.every) * w.every
	if w.started && (step < w.next || start < w.seen) {
		return nil
	}
	w.seen = max(w.seen, end)
	if w.curSet && step > w.curStart {
		out = append(out, w.seal())
	}
	if !w.curSet {
		w.curStart, w.curSet, w.next = step, true, step
	}
	if !w.started {
		w.origin, w.started = start, true // window_s counts from the first interval seen
	}
	for k, c := range counts {
		if c.Attempts <= 0 {
			continue
		}
		s := w.cur[k]
		if s == nil {
			s = &Counts{}
			w.cur[k] = s
		}
		s.Attempts = satAdd(s.Attempts, c.Attempts)
		s.Deferred = satAdd(s.Deferred, c.Deferred)
		s.Bounced = satAdd(s.Bounced, c.Bounced)
	}
	if end >= w.curStart+w.every {
		out = append(out, w.seal())
	}
	return out
}

// Reset empties the window, as at a start.
func (w *Window) Reset() {
	cfg := w.cfg
	*w = *NewWindow(cfg)
}

// seal closes the step being filled, slides the window to its end and
// judges.
func (w *Window) seal() Result {
	end := w.curStart + w.every
	// The steps that leave the window go first, so that their keys make
	// room for this step's.
	n := 0
	for n < len(w.buckets) && w.buckets[n].start < end-w.length {
		for _, e := range w.buckets[n].entries {
			s := &w.sums[e.idx]
			s.Attempts -= int64(e.a)
			s.Deferred -= int64(e.d)
			s.Bounced -= int64(e.b)
			if s.Attempts <= 0 {
				w.release(e.idx)
			}
		}
		n++
	}
	w.buckets = slices.Delete(w.buckets, 0, n)
	keys := make([]Key, 0, len(w.cur))
	for k := range w.cur {
		keys = append(keys, k)
	}
	if len(w.idx)+len(keys) > MaxKeys {
		// Not every new key finds room: the ones with the most attempts
		// do, then by key, so that the same records give the same points.
		slices.SortFunc(keys, func(x, y Key) int {
			return cmp.Or(cmp.Compare(w.cur[y].Attempts, w.cur[x].Attempts), compareKeys(x, y))
		})
	}
	b := bucket{start: w.curStart, entries: make([]entry, 0, len(w.cur))}
	for _, k := range keys {
		c := w.cur[k]
		i := w.index(k)
		if i < 0 {
			w.dropped += c.Attempts
			continue
		}
		// Deferrals and bounces are attempts: a caller's counts with
		// more would make rates above 100 % and the z-test's NaN.
		a := clamp32(c.Attempts)
		d := min(clamp32(c.Deferred), a)
		e := entry{idx: i, a: a, d: d, b: min(clamp32(c.Bounced), a-d)}
		s := &w.sums[i]
		s.Attempts += int64(e.a)
		s.Deferred += int64(e.d)
		s.Bounced += int64(e.b)
		b.entries = append(b.entries, e)
	}
	clear(w.cur)
	w.curSet, w.next = false, end
	w.buckets = append(w.buckets, b)
	return w.judge(end)
}

func clamp32(v int64) uint32 { return uint32(min(max(v, 0), math.MaxUint32)) }

// satAdd adds a count to a sum, stopping at the largest int64 instead of
// wrapping to a negative sum (which the clamp would make 0 attempts); a
// negative count adds nothing.
func satAdd(a, b int64) int64 {
	if b <= 0 {
		return a
	}
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// MaxKeys bounds the ISP × pool × source IP keys a window holds (about
// 11 MB in a 15-step window, at the 550 bytes a key BenchmarkObserve
// measures): 1,000 source IPs sending to 20 ISPs. Attempts of keys beyond it are
// not judged, and counted (Stats.Dropped).
const MaxKeys = 20000

// index returns k's index, or -1 when k is new and the window is full.
func (w *Window) index(k Key) int32 {
	if i, ok := w.idx[k]; ok {
		return i
	}
	if len(w.idx) >= MaxKeys {
		return -1
	}
	var i int32
	if n := len(w.free); n > 0 {
		i, w.free = w.free[n-1], w.free[:n-1]
		w.keys[i], w.sums[i] = k, Counts{}
	} else {
		i = int32(len(w.keys))
		w.keys, w.sums = append(w.keys, k), append(w.sums, Counts{})
	}
	w.idx[k] = i
	return i
}

func (w *Window) release(i int32) {
	delete(w.idx, w.keys[i])
	w.keys[i], w.sums[i] = Key{}, Counts{}
	w.free = append(w.free, i)
}

// member is one IP of a group in a judgement.
type member struct {
	key Key
	Counts
}

// judge gives the verdicts of the window ending at end.
func (w *Window) judge(end int64) Result {
	res := Result{At: time.Unix(end, 0).UTC()}
	res.WindowS = min(w.length, end-w.origin)
	type group struct{ isp, pool string }
	groups := map[group][]member{}
	for k, i := range w.idx {
		g := group{k.ISP, k.Pool}
		groups[g] = append(groups[g], member{k, w.sums[i]})
	}
	order := make([]group, 0, len(groups))
	for g := range groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(x, y group) int { return cmp.Or(strings.Compare(x.isp, y.isp), strings.Compare(x.pool, y.pool)) })
	seen := make(map[Key]bool, len(w.last))
	w.current = [3]int64{}
	for _, g := range order {
		ms := groups[g]
		slices.SortFunc(ms, func(x, y member) int { return strings.Compare(x.key.SourceIP, y.key.SourceIP) })
		rows := judgeGroup(Key{ISP: g.isp, Pool: g.pool}, ms, w.cfg)
		for _, r := range rows {
			if r.Verdict == IPSpecific || r.Verdict == PoolWide {
				w.current[r.Verdict]++
			}
			seen[r.Key] = true
			now, from := alarm(r.Verdict), w.last[r.Key] // absent: ok
			w.last[r.Key] = now
			if now != from {
				res.Changes = append(res.Changes, Change{Row: r, From: from, At: res.At})
			}
		}
		res.Rows = append(res.Rows, rows...)
	}
	for k, v := range w.last {
		if !seen[k] {
			delete(w.last, k)
			if v != OK {
				res.Changes = append(res.Changes, Change{Row: Row{Key: k, Verdict: TooFew}, From: v, At: res.At})
			}
		}
	}
	slices.SortFunc(res.Changes, func(x, y Change) int { return compareKeys(x.Key, y.Key) })
	return res
}

// alarm is what a verdict asks of an operator: ip_specific or pool_wide,
// else ok.
func alarm(v Verdict) Verdict {
	if v == IPSpecific || v == PoolWide {
		return v
	}
	return OK
}

func compareKeys(x, y Key) int {
	return cmp.Or(strings.Compare(x.ISP, y.ISP), strings.Compare(x.Pool, y.Pool), strings.Compare(x.SourceIP, y.SourceIP))
}

// pct is 100 × x / n, 0 for no attempts.
func pct(x, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return 100 * float64(x) / float64(n)
}

// median returns the median of xs, sorting them.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// othersMedian is the median of rates without one occurrence of own: the
// rate of an IP's peers (for two IPs, the other's).
func othersMedian(rates []float64, own float64) float64 {
	others := slices.Clone(rates)
	if i := slices.Index(others, own); i >= 0 {
		others = slices.Delete(others, i, i+1)
	}
	if len(others) == 0 {
		return 0
	}
	return median(others)
}

// noiseMAD is the MAD, in percentage points, that IPs sending n attempts
// each at one rate, the median's medPct, show by chance alone: 0.6745
// binomial standard deviations (the median, not the group's rate, which
// the outlier itself would raise). The MAD is taken as at least that, so that the
// robust score measures an IP against the noise its volume leaves — at
// 8 % and 700 attempts an IP is 1 point off by chance as often as not, and
// 3 points off (a score of 3.5 against the 0.5 floor alone) once in a few
// hundred draws, which four IPs judged every minute reach within hours.
func noiseMAD(medPct, n float64) float64 {
	if n <= 0 {
		return 0
	}
	p := medPct / 100
	return 0.6745 * 100 * math.Sqrt(p*(1-p)/n)
}

// aboveWarn says whether an IP defers above the warning threshold by more
// than chance: a one-sided binomial z of its rate against warnPct of at
// least ZCritical. An IP at 3 % whose 200 attempts came out at 6 % is not
// above 5 % (z 0.65); one at 30 % is, from 200 attempts on (z 16).
func aboveWarn(c Counts, warnPct float64) bool {
	if c.Attempts <= 0 {
		return false
	}
	w := warnPct / 100
	p := float64(c.Deferred) / float64(c.Attempts)
	return p > w && (p-w)/math.Sqrt(w*(1-w)/float64(c.Attempts)) >= ZCritical
}

// judgeGroup judges one (ISP, pool) group: its row, then its IPs' rows.
func judgeGroup(g Key, ms []member, cfg Config) []Row {
	var total Counts
	var rates []float64
	for _, m := range ms {
		total.Attempts += m.Attempts
		total.Deferred += m.Deferred
		total.Bounced += m.Bounced
		if m.Attempts >= cfg.MinAttempts {
			rates = append(rates, pct(m.Deferred, m.Attempts))
		}
	}
	judged := len(rates)
	above := 0
	var sizes []float64 // the judged IPs' attempts
	for _, m := range ms {
		if m.Attempts >= cfg.MinAttempts {
			sizes = append(sizes, float64(m.Attempts))
			if aboveWarn(m.Counts, cfg.WarnPct) {
				above++
			}
		}
	}
	head := Row{Key: g, Counts: total, DeferralPct: pct(total.Deferred, total.Attempts),
		BouncePct: pct(total.Bounced, total.Attempts), IPs: judged, IPsAbove: above}
	head.PoolDeferralPct = head.DeferralPct
	var med, mad float64
	if judged > 0 {
		med = median(slices.Clone(rates))
		dev := make([]float64, judged)
		for i, r := range rates {
			dev[i] = math.Abs(r - med)
		}
		mad = max(median(dev), MADFloorPct, noiseMAD(med, median(sizes)))
		head.PoolMedianPct, head.HasMedian = med, true
	}
	poolWide := judged >= 2 && 2*above > judged
	rows := make([]Row, 1, 1+len(ms))
	anyIP := false
	for _, m := range ms {
		r := Row{Key: m.key, Counts: m.Counts, DeferralPct: pct(m.Deferred, m.Attempts), BouncePct: pct(m.Bounced, m.Attempts),
			PoolDeferralPct: head.DeferralPct, PoolMedianPct: med, HasMedian: judged > 0}
		if judged > 0 {
			r.Score = 0.6745 * (r.DeferralPct - med) / mad
		}
		// One-sided: the IP's rate above the rest of its pool's.
		r.Z = stats.PooledZ(total.Attempts-m.Attempts, total.Deferred-m.Deferred, m.Attempts, m.Deferred)
		switch {
		case m.Attempts < cfg.MinAttempts || judged < 2:
			// Too few attempts — or no other IP of the pool to compare
			// it with: one IP at 60 % is neither ok nor told apart.
			r.Verdict = TooFew
		case aboveWarn(m.Counts, cfg.WarnPct) && r.Z >= ZCritical && r.DeferralPct >= MinRatio*othersMedian(rates, r.DeferralPct) &&
			(judged >= 3 && r.Score >= ScoreCritical || judged == 2 && above == 1):
			r.Verdict = IPSpecific
			anyIP = true
		case poolWide && aboveWarn(m.Counts, cfg.WarnPct):
			r.Verdict = PoolWide
		default:
			r.Verdict = OK
		}
		rows = append(rows, r)
	}
	switch {
	case judged < 2:
		head.Verdict = TooFew
	case poolWide:
		head.Verdict = PoolWide
	case anyIP:
		head.Verdict = IPSpecific
	}
	rows[0] = head
	return rows
}

// Points turns a result into pmta_verdict points (see the package's data
// contract in the README): groups with scope=pool, IPs with scope=ip and
// their source_ip.
func (w *Window) Points(res Result) []agent.Point {
	pts := make([]agent.Point, 0, len(res.Rows))
	for i := range res.Rows {
		r := &res.Rows[i]
		tags := make([]agent.Tag, 0, 4)
		tags = append(tags, agent.Tag{Key: "isp", Value: r.ISP})
		if r.Pool != "" {
			tags = append(tags, agent.Tag{Key: "pool", Value: r.Pool})
		}
		tags = append(tags, agent.Tag{Key: "scope", Value: r.Scope()})
		if r.SourceIP != "" {
			tags = append(tags, agent.Tag{Key: "source_ip", Value: r.SourceIP})
		}
		fields := []agent.Field{
			{Key: "verdict", Value: int64(r.Verdict)},
			{Key: "attempts", Value: r.Attempts},
			{Key: "deferred", Value: r.Deferred},
			{Key: "bounced", Value: r.Bounced},
			{Key: "deferral_pct", Value: r.DeferralPct},
			{Key: "bounce_pct", Value: r.BouncePct},
			{Key: "pool_deferral_pct", Value: r.PoolDeferralPct},
			{Key: "window_s", Value: res.WindowS},
		}
		if r.HasMedian {
			fields = append(fields, agent.Field{Key: "pool_median_pct", Value: r.PoolMedianPct})
		}
		if r.SourceIP == "" {
			fields = append(fields, agent.Field{Key: "ips", Value: int64(r.IPs)}, agent.Field{Key: "ips_above", Value: int64(r.IPsAbove)})
		} else {
			if r.HasMedian {
				fields = append(fields, agent.Field{Key: "score", Value: r.Score})
			}
			fields = append(fields, agent.Field{Key: "z", Value: r.Z})
		}
		pts = append(pts, agent.NewPoint(Measurement, tags, fields, res.At))
	}
	w.emitted += int64(len(pts))
	return pts
}

// Stats are the window's counters and gauges for the agent's self-report.
type Stats struct {
	Points     int64 // pmta_verdict points made
	IPSpecific int64 // rows now ip_specific
	PoolWide   int64 // rows now pool_wide
	Keys       int   // ISP × pool × source IP keys held
	Dropped    int64 // attempts not judged: their key found the window full (MaxKeys)
}

// Stats returns the window's statistics.
func (w *Window) Stats() Stats {
	return Stats{Points: w.emitted, IPSpecific: w.current[IPSpecific], PoolWide: w.current[PoolWide], Keys: len(w.idx), Dropped: w.dropped}
}
