package acct

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
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

func (t *Tailer) snapshotJSON() ([]byte, error) {
	s := snapshot{Agg: t.agg.state(), Files: make([]fileState, 0, len(t.files))}
	for _, e := range t.sortedFiles() {
		fs := fileState{FP: e.fp, Path: e.path, Offset: e.offset, Dev: e.dev, Ino: e.ino, Skipping: e.skipping}
		if e.hdr != nil {
			fs.Header = e.hdr.names
		}
		s.Files = append(s.Files, fs)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return b, nil
}

// commitInitial saves the state of a very first start, before anything is
// read, so that a restart knows where StartAt put each file.
func (t *Tailer) commitInitial() error {
	snap, err := t.snapshotJSON()
	if err != nil {
		return err
	}
	for _, e := range t.files {
		e.cutOffset = e.offset
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.committed, t.commitUnsaved = snap, true
	return t.saveLocked()
}

// closeAndEmit closes the intervals before boundary and emits their points.
// The cut (every file's offset and the new closedUpTo) is written to the
// checkpoint before the batch leaves, so that a crash before Done replays it
// exactly; the state after the cut becomes the checkpoint's snapshot only in
// Done. replayed is the journaled cut being replayed, or nil for a new one.
func (t *Tailer) closeAndEmit(boundary int64, replayed *cut) error {
	pts, changed := t.agg.closeBefore(boundary)
	if !changed && replayed == nil {
		return nil
	}
	snap, err := t.snapshotJSON()
	if err != nil {
		return err
	}
	t.mu.Lock()
	var pc *pendingCut
	if replayed != nil {
		for _, p := range t.pending {
			if p.c.Seq == replayed.Seq {
				pc = p
			}
		}
	}
	if pc == nil {
		t.seq++
		pc = &pendingCut{c: cut{Seq: t.seq, ClosedUpTo: t.agg.closedUpTo, Files: t.cutFiles()}, at: t.now()}
		t.pending = append(t.pending, pc)
		t.thinLocked()
	}
	for _, e := range t.files {
		e.cutOffset = e.offset
	}
	pc.snap = snap
	pc.done = len(pts) == 0
	t.pruneSnapsLocked()
	t.advanceLocked()
	t.boundPendingLocked()
	err = t.saveLocked()
	t.countPendingLocked()
	t.mu.Unlock()
	if len(pts) > 0 {
		seq := pc.c.Seq
		t.emit(agent.Batch{Source: "acct", Points: pts, Done: func() { t.done(seq) }})
	}
	return err
}

func (t *Tailer) cutFiles() []cutFile {
	var cf []cutFile
	for _, e := range t.sortedFiles() {
		if e.offset != e.cutOffset {
			cf = append(cf, cutFile{FPLen: len(e.fp), FPSum: fpSum(e.fp), Offset: e.offset})
		}
	}
	return cf
}

// maxPendingSnaps bounds the snapshots held for unconfirmed batches while a
// sink is slow: beyond it the second newest is dropped, so commits still go
// through the oldest ones in order and then jump to the newest.
const maxPendingSnaps = 32

func (t *Tailer) thinLocked() {
	n := 0
	for _, p := range t.pending {
		if p.snap != nil {
			n++
		}
	}
	// A jump keeps its snapshot in its journal entry anyway.
	if k := len(t.pending) - 2; n > maxPendingSnaps && k > 0 && t.pending[k].c.Snapshot == nil {
		t.pending[k].snap = nil
	}
}

// replayCut re-does a cut journaled before a crash: each file is read up to
// exactly its offset at the cut, then the same intervals are closed, which
// yields the same points as the first time.
func (t *Tailer) replayCut(c cut) error {
	if c.Snapshot != nil {
		return t.replayJump(c)
	}
	used := make([]bool, len(c.Files))
	var errs []error
	for _, e := range t.sortedFiles() {
		if !e.seen {
			continue
		}
		for i, cf := range c.Files {
			if used[i] || !cf.matches(e.fp) || cf.Offset < e.offset {
				continue
			}
			used[i] = true
			if err := t.readEntry(e, cf.Offset, false); err != nil {
				errs = append(errs, err)
			}
			break
		}
	}
	errs = append(errs, t.closeAndEmit(c.ClosedUpTo, &c))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replay accounting cut %d: %w", c.Seq, err)
	}
	return nil
}

// done is a batch's Done: the pipeline holds its points safely.
func (t *Tailer) done(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pending {
		if p.c.Seq == seq {
			p.done = true
		}
	}
	t.pruneSnapsLocked()
	if t.advanceLocked() {
		if err := t.saveLocked(); err != nil {
			t.errLog.log("accounting checkpoint write failed", "err", err)
		}
	}
	t.countPendingLocked()
}

// advanceLocked commits the newest snapshot among the leading done cuts: a
// snapshot is only committed when its batch and all earlier ones are safe.
func (t *Tailer) advanceLocked() bool {
	last := -1
	for i, p := range t.pending {
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
	t.committed, t.committedSeq = t.pending[last].snap, t.pending[last].c.Seq
	t.commitUnsaved = true
	t.pending = t.pending[last+1:]
	return true
}

func (t *Tailer) saveLocked() error {
	if t.committed == nil {
		return nil
	}
	cf := checkpointFile{Version: checkpointVersion, Seq: t.committedSeq, Snapshot: t.committed, TimesChecked: true}
	for _, p := range t.pending {
		cf.Pending = append(cf.Pending, p.c)
	}
	data, err := json.Marshal(cf)
	if err == nil {
		err = writeFileAtomic(t.cfg.StateDir, checkpointName, data)
	}
	if err != nil {
		t.st.checkpointErrors.Add(1)
		return fmt.Errorf("accounting checkpoint: %w", err)
	}
	now := t.now().Unix()
	t.st.lastCheckpoint.Store(now)
	if t.commitUnsaved {
		t.commitUnsaved = false
		t.st.lastCommit.Store(now)
	}
	return nil
}
