package impact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Change is one configuration change for the Runner to measure: when it
// was seen, the block path it is in (FocusOf reads it) and how it reads.
type Change struct {
	Time  time.Time
	Block string
	// Directive and Key say what a change at the top level touched: a
	// domain-macro line (Key its macro) focuses on the macro's domains.
	Directive, Key string
	Text           string
}

// RunnerConfig is what a Runner needs. Files, ISP and Window are required.
type RunnerConfig struct {
	// Window is compared before and after each change: whole seconds.
	Window time.Duration
	// Every is how often a provisional report is made while the after
	// window fills; 0 makes only the final one.
	Every time.Duration
	// Server is the server tag of the points (the pipeline sets it again).
	Server string
	// Files returns the accounting files (the globs, matched again at each
	// run); those last written before a window starts are not read.
	Files func() ([]string, error)
	// Macros returns PowerMTA's domain-macro map (FocusOf); nil for none.
	Macros  func() map[string]string
	ISP     *agent.ISPMap
	Options Options
	// Journal returns the changes recorded before the start (the watcher's
	// journal): those whose window ends later are scheduled, those whose
	// window ended while the agent was down get their final run at once.
	Journal func() ([]Change, error)
	// StatePath is where the changes whose final report is durable are
	// kept, so that a restart does not make it again; "" keeps nothing.
	StatePath string
	// CatchUp bounds the final runs made at start: a change whose window
	// ended longer ago than this is left alone (default 24 h).
	CatchUp time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultCatchUp is RunnerConfig.CatchUp's default.
const DefaultCatchUp = 24 * time.Hour

const (
	// finalTries is how often a final run that could not read the files
	// is tried before the change is given up.
	finalTries = 3
	// maxFocus bounds the rows of what a check's changes touched: a
	// configuration replaced wholesale names a thousand blocks.
	maxFocus = 50
	// maxLoggedRows bounds the ISPs and targets in a run's log line.
	maxLoggedRows = 20
)

// Runner measures the impact of each configuration change while the agent
// runs: a provisional report every Every after the change, while the after
// window fills, and the final one once Window has passed (plus Settle, for
// the records PowerMTA is still writing), each as pmta_impact points at the
// change's time, so that each run overwrites the one before. Changes seen
// in the same second are one comparison, their focus the union of theirs.
//
// One analysis runs at a time, in Run's goroutine: reading the files never
// holds up the pipeline or the tailer, and a change that comes while one
// runs waits for it. Run's context cancels the analysis in progress.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger

	mu      sync.Mutex // guards added and durable, filled from other goroutines
	added   []Change
	durable []finalKey
	wake    chan struct{}

	// Run's own: the comparisons waiting for a run, and the finals made.
	jobs map[int64]*job
	done map[int64]finalKey // by the change's second

	runs, errs, pending, lastRun atomic.Int64
}

// job is one comparison: the changes of one second.
type job struct {
	at      time.Time
	changes []Change
	next    time.Time
	final   bool // next is the final run
	tries   int  // final runs that failed
}

// finalKey names a final report: the change's second and the window.
type finalKey struct {
	At      int64 `json:"at"`
	WindowS int64 `json:"window_s"`
}

// NewRunner checks cfg and returns a Runner; it reads nothing before Run.
func NewRunner(cfg RunnerConfig, log *slog.Logger) (*Runner, error) {
	switch {
	case cfg.Window < time.Second || cfg.Window%time.Second != 0:
		return nil, fmt.Errorf("impact runner: window %s: want whole seconds, at least 1s", cfg.Window)
	case cfg.Every < 0:
		return nil, fmt.Errorf("impact runner: every %s: want 0 or more", cfg.Every)
	case cfg.Files == nil || cfg.ISP == nil || log == nil:
		return nil, errors.New("impact runner: Files, ISP and a logger are required")
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg, log: log.With("component", "pmta_impact"), wake: make(chan struct{}, 1),
		jobs: map[int64]*job{}, done: map[int64]finalKey{}}, nil
}

// Settle is how long after the window's end the final run waits, for the
// records logged before the end that PowerMTA has not written yet: a
// minute, or a sixtieth of a shorter window than an hour.
func Settle(window time.Duration) time.Duration { return min(window/60, time.Minute) }

// Add schedules changes (the watcher's, as it sees them). It never blocks:
// Run takes them at its next step.
func (r *Runner) Add(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	r.mu.Lock()
	r.added = append(r.added, changes...)
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats are the runner's own health, for the component that runs it:
// impact_runs (analyses made, provisional and final), impact_errors (runs
// that could not read the files), impact_pending (changes waiting for
// their final run) and impact_last_run_unix (0 before the first).
func (r *Runner) Stats() []agent.Field {
	return []agent.Field{
		{Key: "impact_runs", Value: r.runs.Load()},
		{Key: "impact_errors", Value: r.errs.Load()},
		{Key: "impact_pending", Value: r.pending.Load()},
		{Key: "impact_last_run_unix", Value: r.lastRun.Load()},
	}
}

// Run schedules the journal's changes and those Add gives, and makes their
// runs, emitting the points, until ctx ends. It returns nil.
func (r *Runner) Run(ctx context.Context, emit func(agent.Batch)) error {
	r.Start()
	defer r.takeDurable() // what became durable while stopping
	for {
		next := r.Step(ctx, emit)
		var fire <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(max(0, next.Sub(r.cfg.Now())))
			fire = t.C
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-fire:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Start reads the state and the journal and schedules what it holds; Run
// calls it, a test stepping the runner calls it once before Step.
func (r *Runner) Start() {
	now := r.cfg.Now()
	for _, k := range r.loadState() {
		r.done[k.At] = k
	}
	if r.cfg.Journal == nil {
		return
	}
	changes, err := r.cfg.Journal()
	if err != nil {
		r.log.Warn("cannot read the changes recorded before the start; only new ones are measured", "err", err)
	}
	for _, c := range changes {
		r.schedule(c, now)
	}
	for k, j := range r.jobs {
		_, made := r.done[k]
		switch end := r.end(j.at); {
		case made, end.Before(now.Add(-r.cfg.CatchUp)):
			// Measured already (also with another window: a change is
			// measured once), or too long ago.
			delete(r.jobs, k)
		case end.After(now):
		default:
			r.log.Info("change impact: the window ended while the agent was not running; measuring it now",
				"at", j.at.Format(time.RFC3339), "change", Describe(j.changes))
		}
	}
	// The state keeps only what a restart could still measure.
	for at := range r.done {
		if r.end(time.Unix(at, 0)).Before(now.Add(-r.cfg.CatchUp)) {
			delete(r.done, at)
		}
	}
	r.pending.Store(int64(len(r.jobs)))
}

// Step takes what Add and the sinks handed over, makes every run that is
// due, one after the other, and returns when the next one is (zero: none).
func (r *Runner) Step(ctx context.Context, emit func(agent.Batch)) time.Time {
	r.mu.Lock()
	added := r.added
	r.added = nil
	r.mu.Unlock()
	now := r.cfg.Now()
	for _, c := range added {
		r.schedule(c, now)
	}
	r.takeDurable()
	for ctx.Err() == nil {
		j := r.due(r.cfg.Now())
		if j == nil {
			break
		}
		r.runJob(ctx, j, emit)
	}
	r.pending.Store(int64(len(r.jobs)))
	var next time.Time
	for _, j := range r.jobs {
		if next.IsZero() || j.next.Before(next) {
			next = j.next
		}
	}
	return next
}

// takeDurable records the finals the sinks' queues now hold.
func (r *Runner) takeDurable() {
	r.mu.Lock()
	durable := r.durable
	r.durable = nil
	r.mu.Unlock()
	if len(durable) == 0 {
		return
	}
	for _, k := range durable {
		r.done[k.At] = k
	}
	r.saveState()
}

// schedule adds c to the job of its second, making one if needed.
func (r *Runner) schedule(c Change, now time.Time) {
	if c.Time.IsZero() {
		return
	}
	at := ceilSecond(c.Time)
	j := r.jobs[at.Unix()]
	if j == nil {
		j = &job{at: at}
		j.next, j.final = r.nextRun(at, now)
		r.jobs[at.Unix()] = j
	}
	if !slices.ContainsFunc(j.changes, func(o Change) bool { return o.Time.Equal(c.Time) && o.Text == c.Text }) {
		j.changes = append(j.changes, c)
	}
}

// end is when the final run of a change at at is due.
func (r *Runner) end(at time.Time) time.Time { return at.Add(r.cfg.Window + Settle(r.cfg.Window)) }

// nextRun is the first run after now of a change at at: the next multiple
// of Every after the change while the after window is open, else the final.
func (r *Runner) nextRun(at, now time.Time) (time.Time, bool) {
	end := r.end(at)
	if r.cfg.Every <= 0 || !now.Before(end) {
		return end, true
	}
	k := max(1, now.Sub(at)/r.cfg.Every+1)
	if t := at.Add(k * r.cfg.Every); t.Before(at.Add(r.cfg.Window)) {
		return t, false
	}
	return end, true
}

// due returns the job whose run is the most overdue, or nil.
func (r *Runner) due(now time.Time) *job {
	var best *job
	for _, j := range r.jobs {
		if !j.next.After(now) && (best == nil || j.next.Before(best.next) || j.next.Equal(best.next) && j.at.Before(best.at)) {
			best = j
		}
	}
	return best
}

// runJob makes one run of j and schedules its next, or forgets it after
// the final.
func (r *Runner) runJob(ctx context.Context, j *job, emit func(agent.Batch)) {
	started := r.cfg.Now()
	final := j.final
	rep, err := r.analyze(ctx, j)
	if ctx.Err() != nil {
		return // stopping: the run is made again at the next start
	}
	r.runs.Add(1)
	r.lastRun.Store(started.Unix())
	if err != nil {
		r.errs.Add(1)
		if final {
			j.tries++
			if j.tries >= finalTries {
				r.log.Warn("change impact not measured: the accounting files could not be read; giving up",
					"at", j.at.Format(time.RFC3339), "change", Describe(j.changes), "tries", j.tries, "err", err)
				delete(r.jobs, j.at.Unix())
				return
			}
			j.next = r.cfg.Now().Add(min(r.cfg.Window, 5*time.Minute))
		} else {
			j.next, j.final = r.nextRun(j.at, r.cfg.Now())
		}
		r.log.Warn("change impact not measured this time: the accounting files could not be read",
			"at", j.at.Format(time.RFC3339), "change", Describe(j.changes), "next", j.next.Format(time.RFC3339), "err", err)
		return
	}
	pts := Points(rep, r.cfg.Server)
	r.logRun(rep, j, final, len(pts), r.cfg.Now().Sub(started))
	b := agent.Batch{Source: Measurement, Points: pts}
	if final {
		key := finalKey{j.at.Unix(), int64(r.cfg.Window / time.Second)}
		b.Done = func() {
			r.mu.Lock()
			r.durable = append(r.durable, key)
			r.mu.Unlock()
			r.poke()
		}
		delete(r.jobs, j.at.Unix())
	} else {
		j.next, j.final = r.nextRun(j.at, r.cfg.Now())
	}
	if len(pts) == 0 {
		if b.Done != nil {
			b.Done()
		}
		return
	}
	emit(b)
}

func (r *Runner) analyze(ctx context.Context, j *job) (Report, error) {
	files, err := r.cfg.Files()
	if err != nil {
		return Report{}, err
	}
	files = ModifiedSince(files, j.at.Add(-r.cfg.Window))
	var macros map[string]string
	if r.cfg.Macros != nil {
		macros = r.cfg.Macros()
	}
	return Analyze(ctx, files, j.at, r.cfg.Window, FocusOfChanges(j.changes, macros), r.cfg.ISP, r.cfg.Options)
}

// FocusOfChanges is the union of what changes touched (FocusOf of each
// block), each target once, at most 50 of them: a configuration replaced
// wholesale names a thousand blocks.
func FocusOfChanges(changes []Change, domainMacros map[string]string) Focus {
	var focus Focus
	for _, c := range changes {
		targets := FocusOf(c.Block, domainMacros)
		if c.Block == "" && strings.EqualFold(c.Directive, "domain-macro") && c.Key != "" {
			targets = append(targets, macroTarget(strings.ToLower(c.Key), domainMacros))
		}
		for _, t := range targets {
			if len(focus) < maxFocus && !slices.ContainsFunc(focus, func(o Target) bool { return o.Kind == t.Kind && o.Name == t.Name }) {
				focus = append(focus, t)
			}
		}
	}
	return focus
}

// SameSecond returns the changes of cs that one comparison with the last
// of them covers: those in the whole second Analyze takes it at, as the
// Runner groups them (a check that finds several changes records them a
// nanosecond apart).
func SameSecond(cs []Change) []Change {
	if len(cs) == 0 {
		return nil
	}
	last := ceilSecond(cs[len(cs)-1].Time)
	var out []Change
	for _, c := range cs {
		if ceilSecond(c.Time).Equal(last) {
			out = append(out, c)
		}
	}
	return out
}

// logRun says a run's headline at info: the change, each ISP's verdict
// and each target's, and whether the expected effect is absent.
func (r *Runner) logRun(rep Report, j *job, final bool, points int, took time.Duration) {
	run := "provisional"
	if final {
		run = "final"
	}
	var isps, touched []string
	absent, more, few := false, 0, 0
	for _, row := range rep.Rows {
		absent = absent || row.Flag != ""
		s := row.Name + "=" + string(row.Outcome)
		switch {
		case row.Focus:
			touched = append(touched, row.Kind+" "+s)
		case row.Outcome == TooFew || len(isps) >= maxLoggedRows:
			// The long tail of small ISPs, by count.
			more++
			if row.Outcome == TooFew {
				few++
			}
		default:
			isps = append(isps, s)
		}
	}
	if more > 0 {
		isps = append(isps, fmt.Sprintf("%d more (%d too few)", more, few))
	}
	if len(touched) > maxLoggedRows {
		touched = append(touched[:maxLoggedRows], "…")
	}
	attrs := []any{"change", Describe(j.changes), "at", rep.At.Format(time.RFC3339), "run", run,
		"window", r.cfg.Window, "isps", strings.Join(isps, ", ")}
	if len(touched) > 0 {
		attrs = append(attrs, "touched", strings.Join(touched, ", "))
	}
	attrs = append(attrs, "effect_absent", absent, "records", rep.Records, "files", rep.Files, "points", points, "took", took)
	r.log.Info("change impact", attrs...)
}

// Describe says the changes of one comparison in one line, bounded.
func Describe(cs []Change) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString("; ")
		}
		if b.Len() > 300 {
			fmt.Fprintf(&b, "and %d more", len(cs)-i)
			break
		}
		b.WriteString(c.Text)
	}
	return b.String()
}

// sortedKeys returns the finals made, oldest first: the state file's order.
func sortedKeys(done map[int64]finalKey) []finalKey {
	return slices.SortedFunc(maps.Values(done), func(a, b finalKey) int { return cmp.Compare(a.At, b.At) })
}

// ceilSecond is t as Analyze compares at: the whole second at or after it
// (records carry whole seconds).
func ceilSecond(t time.Time) time.Time {
	if t.Nanosecond() == 0 {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}
