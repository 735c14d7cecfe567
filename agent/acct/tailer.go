package acct

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/statefile"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

const (
	// maxOpenIntervals bounds memory should a backlog still open too many
	// intervals (readSeen reads one side by side in windows, which keeps a
	// dozen open): past it the oldest intervals are closed before the reader
	// has caught up.
	maxOpenIntervals = 360
	// errLogEvery rate-limits the tailer's errors: failed polls, checkpoint
	// writes, skips.
	errLogEvery = 30 * time.Second
)

// Tailer follows PowerMTA's accounting files, counts every record exactly
// once into per-interval pmta_acct and pmta_acct_diag points, and resumes
// after a restart from a checkpoint that only moves once the emitted points
// are safe (see Batch.Done). It composes a fileset (which files), a
// lineParser and an aggregator (their records, summed per interval) and a
// journal (the checkpoint), and holds its state directory's lock.
type Tailer struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	lock     *statefile.DirLock // released by Close
	files    *fileset
	journal  *journal
	agg      *aggregator
	parser   *lineParser
	emit     func(agent.Batch)
	first    bool // no checkpoint: StartAt applies to the files found now
	errLog   *limitedLog
	snapSize int // the size of snapshotJSON's last result

	st tailerStats
	// legacyTimes: the checkpoint loaded was written before times were
	// checked, and may need unclampFuture once its cuts are replayed.
	legacyTimes bool
}

var (
	_ agent.Source        = (*Tailer)(nil)
	_ agent.StatsReporter = (*Tailer)(nil)
	_ agent.Closer        = (*Tailer)(nil)
)

// NewTailer checks cfg (zero fields take DefaultConfig's, but for MaxAge,
// whose zero is "any age"), creates StateDir (mode 0700) if needed, locks it
// — two agents tailing into one checkpoint would each commit positions the
// other has not sent — and loads the checkpoint. A corrupt checkpoint is
// moved aside and counted, and the tailer starts as on its very first
// start. Close releases the lock.
func NewTailer(cfg Config, isp *agent.ISPMap, log *slog.Logger) (*Tailer, error) {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("StateDir: required"))
	}
	if errs = append(errs, cfg.Validate()...); len(errs) > 0 {
		return nil, fmt.Errorf("acct tailer config: %w", errors.Join(errs...))
	}
	if isp == nil {
		return nil, errors.New("acct tailer: nil ISP map")
	}
	if log == nil {
		return nil, errors.New("acct tailer: nil logger")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("acct tailer state dir: %w", err)
	}
	lock, err := statefile.LockDir(cfg.StateDir, "accounting state")
	if err != nil {
		return nil, err
	}
	t := &Tailer{cfg: cfg, log: log, now: time.Now, lock: lock, first: true}
	// The parts read the clock through t.now, which tests replace.
	now := func() time.Time { return t.now() }
	t.errLog = newLimitedLog(log, slog.LevelWarn, errLogEvery, now)
	t.files = newFileset(cfg.Globs, cfg.FingerprintSize, log)
	t.journal = newJournal(cfg.StateDir, log, t.errLog, now)
	t.agg = newAggregator(cfg.Interval, cfg.TopDiag, isp, cfg.Views...)
	t.agg.fillFrom(cfg.SourceIPs, cfg.Pools)
	if cfg.Verdict.Enabled {
		w := cfg.VerdictWindow
		if w == nil || !w.Takes(cfg.Verdict) {
			w = verdict.NewWindow(cfg.Verdict)
		}
		t.agg.verdicts = w
	}
	t.parser = newLineParser(t.agg, cfg.MaxLineBytes, timeRange{now: now, skew: int64(cfg.MaxClockSkew / time.Second),
		maxAge: int64(cfg.MaxAge / time.Second)}, log, now)
	if err := t.load(); err != nil {
		return nil, errors.Join(err, lock.Release())
	}
	if cfg.Verdict.Enabled && t.agg.verdicts != cfg.VerdictWindow {
		// Not handed over at a reload: the one a stop saved, if any.
		t.restoreVerdicts()
	}
	return t, nil
}

func (t *Tailer) load() error {
	cf, snap, err := loadCheckpoint(t.cfg.StateDir)
	if errors.Is(err, errCorrupt) {
		return t.startAfresh(err)
	}
	if err != nil {
		return fmt.Errorf("acct tailer: %w", err)
	}
	if cf == nil {
		return nil
	}
	err = t.agg.restore(snap.Agg)
	if err == nil {
		err = t.checkJumps(cf.Pending)
	}
	if err != nil {
		t.agg.reset()
		return t.startAfresh(err)
	}
	_ = t.files.restore(snap.Files) // no descriptor is open yet
	t.first = false
	t.legacyTimes = !cf.TimesChecked
	t.journal.restore(cf)
	return nil
}

// startAfresh moves a checkpoint that cannot be used aside, for a human to
// look at, and counts it; the tailer then starts as on its very first start.
func (t *Tailer) startAfresh(cause error) error {
	to, err := quarantineCheckpoint(t.cfg.StateDir, t.now())
	if err != nil {
		return fmt.Errorf("acct tailer: %w (after: %w)", err, cause)
	}
	t.st.checkpointCorrupt.Add(1)
	t.log.Error("accounting checkpoint is corrupt; moved aside, starting afresh", "moved_to", to, "err", cause)
	return nil
}

// Name implements agent.Source.
func (t *Tailer) Name() string { return "acct" }

// Component implements agent.StatsReporter.
func (t *Tailer) Component() string { return "acct" }

// SetEmit sets where PollOnce sends batches; Run sets it too.
func (t *Tailer) SetEmit(emit func(agent.Batch)) { t.emit = emit }

// Run polls every PollEvery until ctx is cancelled. Read errors are logged
// (rate-limited) and retried on the next poll; Run returns nil on a clean stop.
func (t *Tailer) Run(ctx context.Context, emit func(agent.Batch)) error {
	t.SetEmit(emit)
	tick := time.NewTicker(t.cfg.PollEvery)
	defer tick.Stop()
	for {
		if err := t.PollOnce(ctx); err != nil && ctx.Err() == nil {
			t.errLog.log("accounting poll failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			t.shutdown()
			return nil
		case <-tick.C:
		}
	}
}

// PollOnce runs one step: find the files, replay cuts left by a crash, read
// every file up to its last complete line (a backlog side by side, closing
// intervals as it goes; see readSeen), and close the intervals that are due.
// Tests call it directly; Run calls it on a ticker.
func (t *Tailer) PollOnce(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.emit == nil {
		return errors.New("acct tailer: no emit function; call Run or SetEmit first")
	}
	now := t.now()
	added, err := t.files.discover(now)
	errs := []error{err}
	if t.first && t.cfg.StartAt == "end" {
		for _, e := range added {
			t.skipExisting(e)
		}
	}
	t.updateStats(now)
	if t.first {
		t.first = false
		errs = append(errs, t.commitInitial())
	}
	for c, ok := t.journal.nextReplay(); ok; c, ok = t.journal.nextReplay() {
		errs = append(errs, t.replayCut(c))
	}
	// A missing file is drained whole first: it will not grow, and a
	// deleted one is only readable until its descriptor closes.
	var seen []*fileEntry
	caughtUp := true
	for _, e := range t.files.sorted() {
		if e.seen {
			seen = append(seen, e)
			continue
		}
		if err := t.readMissing(e); err != nil {
			caughtUp = false
			t.st.readErrors.Add(1)
			errs = append(errs, err)
		}
	}
	boundary := t.wallBoundary(now)
	if t.legacyTimes {
		t.legacyTimes = false
		t.unclampFuture(boundary)
	}
	ok, readErrs := t.readSeen(ctx, seen, now.Unix(), boundary)
	errs = append(errs, readErrs...)
	if caughtUp && ok {
		errs = append(errs, t.closeAndEmit(boundary, nil))
	}
	t.files.closeIdle(now)
	t.updateStats(now)
	return errors.Join(errs...)
}

// wallBoundary is where the clock closes intervals: the start of the
// interval that holds now minus the grace.
func (t *Tailer) wallBoundary(now time.Time) int64 {
	return floorDiv(now.Add(-t.cfg.Grace).Unix(), t.agg.iv) * t.agg.iv
}

// boundOpen closes the oldest intervals while a backlog keeps too many open,
// never past what the clock closes: an interval that has not ended yet (a
// record up to max_clock_skew ahead of the clock) waits for its time.
func (t *Tailer) boundOpen() {
	n := len(t.agg.open)
	if n <= maxOpenIntervals {
		return
	}
	limit := min(t.agg.open[n-maxOpenIntervals/2].start, t.wallBoundary(t.now()))
	if limit <= t.agg.open[0].start {
		return
	}
	if err := t.closeAndEmit(limit, nil); err != nil {
		t.errLog.log("accounting checkpoint write failed", "err", err)
	}
}

// unclampFuture repairs, once, a checkpoint of an agent from before the time
// checks, which closed the intervals up to a record dated ahead and so made
// every later record late, also after restarts: closed-up-to beyond the
// clock by more than max_clock_skew goes back to the clock. Only such a
// checkpoint: a clock stepped back while the agent runs keeps what was
// closed, and the records of closed intervals count as late, since opening
// an emitted interval again would write a second point over the first.
func (t *Tailer) unclampFuture(boundary int64) {
	a := t.agg
	limit := boundary + a.iv + int64(t.cfg.MaxClockSkew/time.Second)
	if !a.closedSet || a.closedUpTo <= limit {
		return
	}
	t.log.Warn("accounting intervals were closed up to a time in the future; reopening from now",
		"closed_up_to", time.Unix(a.closedUpTo, 0).UTC(), "now", time.Unix(boundary, 0).UTC())
	a.closedUpTo = boundary
}

// shutdown saves the current state when no emitted batch is outstanding, so
// that a restart need not re-read the open intervals. The files stay open
// and the lock held until Close: the Done callbacks of the batches still
// being drained write the checkpoint, and a tailer stopped for a reload
// that runs on (its batches did not settle) still drains a file deleted
// meanwhile through its descriptor.
func (t *Tailer) shutdown() {
	if err := t.journal.commitIfIdle(t.snapshotJSON); err != nil {
		t.log.Warn("accounting checkpoint at shutdown failed", "err", err)
	}
	t.saveVerdicts()
}

// Settle waits, after Run has returned, until every batch the tailer
// emitted is durable and the checkpoint holds its newest state, so that
// another tailer may take over the state directory (a reload) without
// replaying a batch already on its way. It fails, changing nothing, when
// ctx ends first: a sink's buffer that refuses appends holds the cuts.
func (t *Tailer) Settle(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !t.journal.idle() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d accounting batches are not yet durable in the sinks' buffers", t.journal.pendingCuts.Load())
		case <-tick.C:
		}
	}
	return t.journal.commitIfIdle(t.snapshotJSON)
}

// Close closes the files the tailer holds open and releases the state
// directory's lock. It is safe without Run and more than once. Done
// callbacks of emitted batches still work after it.
func (t *Tailer) Close() error {
	err := t.files.closeAll()
	if t.lock != nil {
		err = errors.Join(err, t.lock.Release())
		t.lock = nil
	}
	return err
}
