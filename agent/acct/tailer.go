package acct

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
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
}

// Defaults of Config.
const (
	DefaultInterval        = 10 * time.Second
	DefaultGrace           = 500 * time.Millisecond
	DefaultPollEvery       = 500 * time.Millisecond
	DefaultFingerprintSize = 1024
	DefaultTopDiag         = 20
	DefaultMaxLineBytes    = 1 << 20
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
	if c.Grace < 0 || c.PollEvery < 0 || c.FingerprintSize < 16 || c.TopDiag < 0 || c.MaxLineBytes < 1024 {
		errs = append(errs, errors.New("acct: grace and poll_every must be >= 0, fingerprint_size >= 16, top_diag >= 0, max_line_bytes >= 1024"))
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

	st tailerStats
}

type tailerStats struct {
	linesRead, records, malformed, late, filesOpen, filesDone, truncations atomic.Int64
	bytesRead, tailLagBytes, diagFolded, lastCheckpoint                    atomic.Int64
	checkpointCorrupt, checkpointErrors, readErrors                        atomic.Int64
	tailLagMillis, pendingCuts, lastCommit                                 atomic.Int64
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
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("acct tailer state dir: %w", err)
	}
	t := &Tailer{cfg: cfg, log: log, now: time.Now, first: true}
	t.agg = newAggregator(cfg.Interval, cfg.TopDiag, isp)
	now := func() time.Time { return t.now() }
	t.parser = newLineParser(t.agg, cfg.MaxLineBytes, &rateLog{logger: log, period: 10 * time.Second, now: now})
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
		t.agg.open, t.agg.closedSet = nil, false
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
	boundary := floorDiv(now.Add(-t.cfg.Grace).Unix(), t.agg.iv) * t.agg.iv
	ok, readErrs := t.readSeen(ctx, seen, now.Unix(), boundary)
	errs = append(errs, readErrs...)
	if caughtUp && ok {
		errs = append(errs, t.closeAndEmit(boundary, nil))
	}
	t.closeIdle(now)
	t.updateStats(now)
	return errors.Join(errs...)
}

// boundOpen closes the oldest intervals while a backlog keeps too many open.
func (t *Tailer) boundOpen() {
	if n := len(t.agg.open); n > maxOpenIntervals {
		if err := t.closeAndEmit(t.agg.open[n-maxOpenIntervals/2].start, nil); err != nil {
			t.errLog.log("accounting checkpoint write failed", "err", err)
		}
	}
}

// Stats implements agent.StatsReporter. last_checkpoint_unix is when the
// checkpoint file was last written (at every cut); last_commit_unix when the
// state it resumes from last moved, that is when a batch and every earlier
// one had been confirmed (0 before the first commit of this process);
// pending_cuts counts the emitted batches whose Done has not come. Cuts
// pending while last_commit_unix grows old mean a sink holds a batch back.
func (t *Tailer) Stats() []agent.Field {
	s := &t.st
	return []agent.Field{
		{Key: "lines_read", Value: s.linesRead.Load()},
		{Key: "records", Value: s.records.Load()},
		{Key: "malformed", Value: s.malformed.Load()},
		{Key: "late", Value: s.late.Load()},
		{Key: "files_open", Value: s.filesOpen.Load()},
		{Key: "files_done", Value: s.filesDone.Load()},
		{Key: "truncations", Value: s.truncations.Load()},
		{Key: "bytes_read", Value: s.bytesRead.Load()},
		{Key: "tail_lag_bytes", Value: s.tailLagBytes.Load()},
		{Key: "tail_lag_s", Value: float64(s.tailLagMillis.Load()) / 1000},
		{Key: "diag_folded", Value: s.diagFolded.Load()},
		{Key: "last_checkpoint_unix", Value: s.lastCheckpoint.Load()},
		{Key: "last_commit_unix", Value: s.lastCommit.Load()},
		{Key: "pending_cuts", Value: s.pendingCuts.Load()},
		{Key: "checkpoint_corrupt", Value: s.checkpointCorrupt.Load()},
		{Key: "checkpoint_errors", Value: s.checkpointErrors.Load()},
		{Key: "read_errors", Value: s.readErrors.Load()},
	}
}

func (t *Tailer) updateStats(now time.Time) {
	p, s := t.parser, &t.st
	s.linesRead.Store(p.lines)
	s.records.Store(t.agg.records)
	s.malformed.Store(p.malformed)
	s.late.Store(t.agg.late)
	s.bytesRead.Store(p.bytesRead)
	s.diagFolded.Store(t.agg.folded)
	var lag, open int64
	for _, e := range t.files {
		lag += max(e.size-e.offset, 0)
		if e.f != nil {
			open++
		}
	}
	s.tailLagBytes.Store(lag)
	s.filesOpen.Store(open)
	if t.agg.newest > 0 {
		s.tailLagMillis.Store(max(now.UnixMilli()-t.agg.newest*1000, 0))
	}
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
