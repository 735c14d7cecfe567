package acct

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Config configures a Tailer. Zero values take the defaults.
type Config struct {
	// Globs name the accounting files to follow; a move-to directory is just
	// one more glob. Default /var/log/pmta/acct-*.csv and /var/log/pmta/diag-*.csv.
	Globs []string
	// StateDir holds the checkpoint. Required.
	StateDir string
	// StartAt is "beginning" or "end" (the default): where to start in the
	// files present at the very first start, when there is no checkpoint.
	StartAt string
	// Interval is the aggregation window (default 10 s, whole seconds).
	Interval time.Duration
	// Grace is how long after an interval's end the tailer waits for its
	// records before closing it (default 500 ms).
	Grace time.Duration
	// PollEvery is how often the files are scanned and read (default 500 ms).
	PollEvery time.Duration
	// FingerprintSize is how many leading bytes identify a file (default 1024).
	FingerprintSize int
	// TopDiag is how many dsnDiag patterns per (type, isp) and interval are
	// kept; the rest fold into "other" (default 20).
	TopDiag int
	// MaxLineBytes bounds one record; longer ones are skipped (default 1 MiB).
	MaxLineBytes int
	// MaxClockSkew is how far past the clock a record's timeLogged may be
	// (default 5 min); MaxAge how far behind it (0: any age). Records
	// outside, and those before 1990 or after 2200, are counted per reason
	// and not aggregated.
	MaxClockSkew time.Duration
	MaxAge       time.Duration
}

// Defaults of Config.
const (
	DefaultInterval        = 10 * time.Second
	DefaultGrace           = 500 * time.Millisecond
	DefaultPollEvery       = 500 * time.Millisecond
	DefaultFingerprintSize = 1024
	DefaultTopDiag         = 20
	DefaultMaxLineBytes    = 1 << 20
	DefaultMaxClockSkew    = 5 * time.Minute
)

// DefaultGlobs returns the stock PowerMTA accounting file locations.
func DefaultGlobs() []string {
	return []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/diag-*.csv"}
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Globs) == 0 {
		c.Globs = DefaultGlobs()
	}
	if c.StartAt == "" {
		c.StartAt = "end"
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.PollEvery == 0 {
		c.PollEvery = DefaultPollEvery
	}
	if c.FingerprintSize == 0 {
		c.FingerprintSize = DefaultFingerprintSize
	}
	if c.TopDiag == 0 {
		c.TopDiag = DefaultTopDiag
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("acct.state_dir: required"))
	}
	if c.StartAt != "beginning" && c.StartAt != "end" {
		errs = append(errs, fmt.Errorf("acct.start_at: %q is neither \"beginning\" nor \"end\"", c.StartAt))
	}
	if c.Interval < time.Second || c.Interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("acct.interval: %s is not a whole number of seconds", c.Interval))
	}
	if c.Grace < 0 || c.PollEvery < 0 || c.FingerprintSize < 16 || c.TopDiag < 0 || c.MaxLineBytes < 1024 ||
		c.MaxClockSkew < 0 || c.MaxAge < 0 {
		errs = append(errs, errors.New("acct: grace, poll_every, max_clock_skew and max_age must be >= 0, fingerprint_size >= 16, top_diag >= 0, max_line_bytes >= 1024"))
	}
	return c, errors.Join(errs...)
}

const (
	// missingPolls is how many scans in a row a file must be absent from the
	// globs before it is drained and forgotten; one is not enough, as a file
	// being moved between two watched directories can fall between globs.
	missingPolls = 3
	// idleClose is how long a fully read file may sit unchanged before its
	// descriptor is closed; it is reopened by path when it grows.
	idleClose = 5 * time.Minute
	// maxOpenIntervals bounds memory should a backlog still open too many
	// intervals (readSeen reads one side by side in windows, which keeps a
	// dozen open): past it the oldest intervals are closed before the reader
	// has caught up.
	maxOpenIntervals = 360
)

// Tailer follows PowerMTA's accounting files, counts every record exactly
// once into per-interval pmta_acct and pmta_acct_diag points, and resumes
// after a restart from a checkpoint that only moves once the emitted points
// are safe (see Batch.Done).
type Tailer struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	open   func(name string) (*os.File, error) // os.Open; tests make files unreadable
	agg    *aggregator
	parser *lineParser
	files  []*fileEntry
	emit   func(agent.Batch)
	first  bool  // no checkpoint: StartAt applies to the files found now
	replay []cut // journaled cuts still to be replayed after a restart
	seq    uint64
	errLog *rateLog
	// stuckLog reports a batch that is not confirmed for so long that the
	// pending cuts pass maxPending.
	stuckLog   *rateLog
	maxPending int // see boundPendingLocked; a field so tests can lower it

	mu            sync.Mutex // guards the commit state below; Done runs anywhere
	committed     []byte
	committedSeq  uint64
	commitUnsaved bool // committed moved since the last checkpoint write
	pending       []*pendingCut

	st    tailerStats
	probs problemState
	// legacyTimes: the checkpoint loaded was written before times were
	// checked, and may need unclampFuture once its cuts are replayed.
	legacyTimes bool
}

var (
	_ agent.Source        = (*Tailer)(nil)
	_ agent.StatsReporter = (*Tailer)(nil)
	_ agent.Closer        = (*Tailer)(nil)
)

// NewTailer checks cfg, creates StateDir if needed and loads the checkpoint.
// A corrupt checkpoint is moved aside and counted, and the tailer starts as on
// its very first start.
func NewTailer(cfg Config, isp *agent.ISPMap, log *slog.Logger) (*Tailer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("acct tailer config: %w", err)
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
	t := &Tailer{cfg: cfg, log: log, now: time.Now, open: os.Open, first: true}
	t.agg = newAggregator(cfg.Interval, cfg.TopDiag, isp)
	now := func() time.Time { return t.now() }
	t.parser = newLineParser(t.agg, cfg.MaxLineBytes, timeRange{now: now, skew: int64(cfg.MaxClockSkew / time.Second),
		maxAge: int64(cfg.MaxAge / time.Second)}, &rateLog{logger: log, period: 10 * time.Second, now: now})
	t.errLog = &rateLog{logger: log, period: 30 * time.Second, now: now}
	t.stuckLog = &rateLog{logger: log, loud: true, period: stuckLogEvery, now: now}
	t.maxPending = maxPendingCuts
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tailer) load() error {
	cf, snap, err := loadCheckpoint(t.cfg.StateDir)
	if errors.Is(err, errCorrupt) {
		to, qerr := quarantineCheckpoint(t.cfg.StateDir, t.now())
		if qerr != nil {
			return fmt.Errorf("acct tailer: %w (after: %w)", qerr, err)
		}
		t.st.checkpointCorrupt.Add(1)
		t.log.Error("accounting checkpoint is corrupt; moved aside, starting afresh", "moved_to", to, "err", err)
		return nil
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
		to, qerr := quarantineCheckpoint(t.cfg.StateDir, t.now())
		if qerr != nil {
			return fmt.Errorf("acct tailer: %w (after: %w)", qerr, err)
		}
		t.st.checkpointCorrupt.Add(1)
		t.log.Error("accounting checkpoint is corrupt; moved aside, starting afresh", "moved_to", to, "err", err)
		return nil
	}
	t.files = entriesFrom(snap.Files)
	t.first = false
	t.legacyTimes = !cf.TimesChecked
	t.committed, t.committedSeq, t.seq = cf.Snapshot, cf.Seq, cf.Seq
	for _, c := range cf.Pending {
		t.pending = append(t.pending, &pendingCut{c: c, at: t.now()})
		t.replay = append(t.replay, c)
		t.seq = max(t.seq, c.Seq)
	}
	t.st.pendingCuts.Store(int64(len(t.pending)))
	return nil
}

// entriesFrom makes the file entries of a saved state; discover then binds
// them to the files found.
func entriesFrom(files []fileState) []*fileEntry {
	out := make([]*fileEntry, 0, len(files))
	for _, fs := range files {
		e := &fileEntry{fp: fs.FP, dev: fs.Dev, ino: fs.Ino, hasID: fs.Ino != 0}
		e.path, e.name, e.offset, e.skipping = fs.Path, fs.Path, fs.Offset, fs.Skipping
		e.cutOffset = fs.Offset
		if len(fs.Header) > 0 {
			e.hdr = newHeader(fs.Header)
		}
		out = append(out, e)
	}
	return out
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
	errs := []error{t.discover(now)}
	t.updateStats(now)
	if t.first {
		t.first = false
		errs = append(errs, t.commitInitial())
	}
	for len(t.replay) > 0 {
		errs = append(errs, t.replayCut(t.replay[0]))
		t.replay = t.replay[1:]
	}
	// A missing file is drained whole first: it will not grow, and a
	// deleted one is only readable until its descriptor closes.
	var seen []*fileEntry
	caughtUp := true
	for _, e := range t.sortedFiles() {
		if e.seen {
			seen = append(seen, e)
			continue
		}
		if err := t.missing(e); err != nil {
			caughtUp = false
			t.st.readErrors.Add(1)
			errs = append(errs, err)
		}
	}
	boundary := t.wallBoundary(now)
	if t.legacyTimes && len(t.replay) == 0 {
		t.legacyTimes = false
		t.unclampFuture(boundary)
	}
	ok, readErrs := t.readSeen(ctx, seen, now.Unix(), boundary)
	errs = append(errs, readErrs...)
	if caughtUp && ok {
		errs = append(errs, t.closeAndEmit(boundary, nil))
	}
	t.closeIdle(now)
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
// that a restart need not re-read the open intervals, and closes the files.
func (t *Tailer) shutdown() {
	t.mu.Lock()
	if len(t.pending) == 0 {
		if snap, err := t.snapshotJSON(); err == nil {
			t.committed, t.commitUnsaved = snap, true
			if err := t.saveLocked(); err != nil {
				t.log.Warn("accounting checkpoint at shutdown failed", "err", err)
			}
		}
	}
	t.mu.Unlock()
	_ = t.Close()
}

// Close closes the files the tailer holds open. It is safe without Run and
// more than once. Done callbacks of emitted batches still work after it.
func (t *Tailer) Close() error {
	var errs []error
	for _, e := range t.files {
		if e.f != nil {
			errs = append(errs, e.f.Close())
			e.f = nil
		}
	}
	return errors.Join(errs...)
}
