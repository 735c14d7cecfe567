package acct

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// pendingCut is a cut not committed yet: its batch or an earlier one is not
// confirmed. snap is the state right after the cut, committed once this
// batch and every earlier one are done; it is nil for a cut loaded from disk
// until the replay reaches it. at is when the cut was made (or replayed),
// for the age in the stuck-checkpoint log.
type pendingCut struct {
	c    cut
	snap []byte
	done bool
	at   time.Time
}

// journal is the checkpoint file and the cuts waiting in it: the committed
// snapshot (the state after the last batch confirmed with every earlier one)
// and the pending cuts since, which a restart replays. It commits in order
// (advance), keeps few snapshots while a sink is slow (thin, prune) and
// folds confirmed runs into jumps while one batch is stuck (bound). It has
// its own lock, since batch Done callbacks come from any goroutine; the
// snapshots it holds are opaque bytes the tailer makes and restores.
type journal struct {
	dir string
	log *slog.Logger
	now func() time.Time
	// errLog reports checkpoint writes that failed in a Done, with the
	// tailer's other errors; stuckLog a batch held back past maxPending.
	errLog     *limitedLog
	stuckLog   *limitedLog
	maxPending int // see boundPendingLocked; a field so tests can lower it

	// replay lists the journaled cuts still to be replayed after a restart,
	// in order; only the polling goroutine touches it.
	replay []cut

	mu            sync.Mutex // guards the commit state below
	committed     []byte
	committedSeq  uint64
	seq           uint64 // the newest cut's
	commitUnsaved bool   // committed moved since the last checkpoint write
	pending       []*pendingCut
	buf           []byte // the checkpoint file's small parts, reused by each write

	// Counters for Stats (see there).
	lastCheckpoint, lastCommit, pendingCuts, checkpointErrors atomic.Int64
}

func newJournal(dir string, log *slog.Logger, errLog *limitedLog, now func() time.Time) *journal {
	return &journal{
		dir: dir, log: log, now: now, errLog: errLog, maxPending: maxPendingCuts,
		stuckLog: newLimitedLog(log, slog.LevelError, stuckLogEvery, now),
	}
}

// restore takes over a checkpoint loaded at start: its snapshot is what is
// committed, and its pending cuts wait for their replay.
func (j *journal) restore(cf *checkpointFile) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.committed, j.committedSeq, j.seq = cf.Snapshot, cf.Seq, cf.Seq
	for _, c := range cf.Pending {
		j.pending = append(j.pending, &pendingCut{c: c, at: j.now()})
		j.replay = append(j.replay, c)
		j.seq = max(j.seq, c.Seq)
	}
	j.pendingCuts.Store(int64(len(j.pending)))
}

// nextReplay takes the next journaled cut to replay.
func (j *journal) nextReplay() (cut, bool) {
	if len(j.replay) == 0 {
		return cut{}, false
	}
	c := j.replay[0]
	j.replay = j.replay[1:]
	return c, true
}

// commit makes snap the committed state and writes the checkpoint: the
// state of a very first start, before anything is read.
func (j *journal) commit(snap []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.committed, j.commitUnsaved = snap, true
	return j.saveLocked()
}

// commitIfIdle commits the state snap returns when no emitted batch is
// outstanding (at a clean stop, so that a restart need not re-read the open
// intervals). A batch still out keeps the checkpoint where it is.
func (j *journal) commitIfIdle(snap func() ([]byte, error)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) > 0 {
		return nil
	}
	s, err := snap()
	if err != nil {
		return nil // the checkpoint stays as it is; a restart reads from there
	}
	j.committed, j.commitUnsaved = s, true
	return j.saveLocked()
}

// cut journals a closing of intervals up to closedUpTo and writes the
// checkpoint, before the batch leaves, so that a crash before Done replays
// it exactly; snap (the state after it) is committed only once its batch and
// every earlier one are done. replayed is the journaled cut being replayed,
// or nil for a new one, whose files (those read since the last cut) files
// returns. empty says the cut emits no batch, so nothing waits for it. It
// returns the cut's sequence number, for the batch's Done.
func (j *journal) cut(replayed *cut, closedUpTo int64, files func() []cutFile, snap []byte, empty bool) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var pc *pendingCut
	if replayed != nil {
		for _, p := range j.pending {
			if p.c.Seq == replayed.Seq {
				pc = p
			}
		}
	}
	if pc == nil {
		j.seq++
		pc = &pendingCut{c: cut{Seq: j.seq, ClosedUpTo: closedUpTo, Files: files()}, at: j.now()}
		j.pending = append(j.pending, pc)
		j.thinLocked()
	}
	pc.snap = snap
	pc.done = empty
	j.pruneSnapsLocked()
	j.advanceLocked()
	j.boundPendingLocked()
	err := j.saveLocked()
	j.countPendingLocked()
	return pc.c.Seq, err
}

// idle reports whether no cut waits for its batch.
func (j *journal) idle() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending) == 0
}

// done is a batch's Done: the pipeline holds its points safely.
func (j *journal) done(seq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range j.pending {
		if p.c.Seq == seq {
			p.done = true
		}
	}
	j.pruneSnapsLocked()
	if j.advanceLocked() {
		if err := j.saveLocked(); err != nil {
			j.errLog.log("accounting checkpoint write failed", "err", err)
		}
	}
	j.countPendingLocked()
}

// jumped notes that the jump c was replayed: it is done (every batch it
// stands for was confirmed) and commits like any confirmed cut.
func (j *journal) jumped(c cut) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range j.pending {
		if p.c.Seq == c.Seq {
			p.snap, p.done, p.at = c.Snapshot, true, j.now()
		}
	}
	var err error
	if j.advanceLocked() {
		err = j.saveLocked()
	}
	j.countPendingLocked()
	return err
}

// advanceLocked commits the newest snapshot among the leading done cuts: a
// snapshot is only committed when its batch and all earlier ones are safe.
func (j *journal) advanceLocked() bool {
	last := -1
	for i, p := range j.pending {
		if !p.done {
			break
		}
		if p.snap != nil {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	j.committed, j.committedSeq = j.pending[last].snap, j.pending[last].c.Seq
	j.commitUnsaved = true
	j.pending = j.pending[last+1:]
	return true
}

// saveLocked writes the checkpoint: the committed snapshot and the pending
// cuts. Before the first commit there is nothing to write.
func (j *journal) saveLocked() error {
	if j.committed == nil {
		return nil
	}
	cf := checkpointFile{Version: checkpointVersion, Seq: j.committedSeq, Snapshot: j.committed, TimesChecked: true}
	for _, p := range j.pending {
		cf.Pending = append(cf.Pending, p.c)
	}
	var n int
	var err error
	j.buf, n, err = checkpointParts(j.buf, &cf)
	if err == nil {
		err = writeFileAtomic(j.dir, checkpointName, j.buf[:n], cf.Snapshot, j.buf[n:])
	}
	if err != nil {
		j.checkpointErrors.Add(1)
		return fmt.Errorf("accounting checkpoint: %w", err)
	}
	if j.log.Enabled(context.Background(), slog.LevelDebug) {
		j.log.Debug("accounting checkpoint written", "seq", j.committedSeq, "pending_cuts", len(j.pending),
			"bytes", n+len(cf.Snapshot))
	}
	now := j.now().Unix()
	j.lastCheckpoint.Store(now)
	if j.commitUnsaved {
		j.commitUnsaved = false
		j.lastCommit.Store(now)
	}
	return nil
}

// countPendingLocked updates the pending_cuts stat: batches emitted whose
// Done has not come (a jump's batches all came).
func (j *journal) countPendingLocked() {
	n := 0
	for _, p := range j.pending {
		if !p.done {
			n++
		}
	}
	j.pendingCuts.Store(int64(n))
}
