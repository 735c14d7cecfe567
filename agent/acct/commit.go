package acct

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pmta-agent/pmta-agent/agent"
)

// The tailer's side of the journal: the snapshots it hands the journal, the
// cuts it makes when it closes intervals, and their replay after a crash,
// which needs the files and the aggregator the journal knows nothing of.

// snapshotJSON is the tailer's whole resumable state: the files and the
// aggregator's open intervals, as json.Marshal(snapshot{...}) writes them.
// The open intervals are written straight from the aggregator (appendState),
// into one allocation in the common case: a catch-up takes a snapshot after
// every window.
func (t *Tailer) snapshotJSON() ([]byte, error) {
	files, err := json.Marshal(t.files.state())
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	// Sized from the last one, so that it is usually the one allocation.
	b := make([]byte, 0, t.snapSize+t.snapSize/8+len(files)+64)
	b = append(b, `{"files":`...)
	b = append(b, files...)
	b = append(b, `,"agg":`...)
	b = t.agg.appendState(b)
	b = append(b, '}')
	t.snapSize = len(b)
	return b, nil
}

// commitInitial saves the state of a very first start, before anything is
// read, so that a restart knows where StartAt put each file.
func (t *Tailer) commitInitial() error {
	snap, err := t.snapshotJSON()
	if err != nil {
		return err
	}
	t.files.markCut()
	return t.journal.commit(snap)
}

// closeAndEmit closes the intervals before boundary and emits their points.
// The cut (every file's offset and the new closedUpTo) is written to the
// checkpoint before the batch leaves, so that a crash before Done replays it
// exactly; the state after the cut becomes the checkpoint's snapshot only in
// Done. replayed is the journaled cut being replayed, or nil for a new one.
func (t *Tailer) closeAndEmit(boundary int64, replayed *cut) error {
	t.agg.muted = replayed != nil
	pts, changed := t.agg.closeBefore(boundary)
	t.logVerdicts(t.agg.takeChanges())
	if !changed && replayed == nil {
		return nil
	}
	snap, err := t.snapshotJSON()
	if err != nil {
		return err
	}
	seq, err := t.journal.cut(replayed, t.agg.closedUpTo, t.files.cutFiles, snap, len(pts) == 0)
	t.files.markCut()
	if len(pts) > 0 {
		t.emit(agent.Batch{Source: "acct", Points: pts, Done: func() { t.journal.done(seq) }})
	}
	return err
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
	for _, e := range t.files.sorted() {
		if !e.seen {
			continue
		}
		for i, cf := range c.Files {
			if used[i] || !cf.matches(e.fp) || cf.Offset < e.offset {
				continue
			}
			used[i] = true
			if err := t.readToOffset(e, cf.Offset); err != nil {
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

// replayJump replays a jump after a restart: the state becomes the one
// saved in it, as at a restart from that snapshot — the aggregator's open
// intervals, and the files bound again by inode or fingerprint — and nothing
// is emitted, as every batch it stands for was confirmed.
func (t *Tailer) replayJump(c cut) error {
	var s snapshot
	if err := json.Unmarshal(c.Snapshot, &s); err != nil {
		return fmt.Errorf("replay accounting jump %d: %w", c.Seq, err)
	}
	if err := t.agg.restore(s.Agg); err != nil {
		return fmt.Errorf("replay accounting jump %d: %w", c.Seq, err)
	}
	errs := []error{t.files.restore(s.Files)}
	_, err := t.files.discover(t.now())
	errs = append(errs, err, t.journal.jumped(c))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replay accounting jump %d: %w", c.Seq, err)
	}
	return nil
}

// checkJumps checks at load that the snapshots of the journaled jumps can be
// restored, so that a damaged one is a corrupt checkpoint rather than a
// replay that fails half-way.
func (t *Tailer) checkJumps(cuts []cut) error {
	for _, c := range cuts {
		if c.Snapshot == nil {
			continue
		}
		var s snapshot
		if err := json.Unmarshal(c.Snapshot, &s); err != nil {
			return fmt.Errorf("%w: jump %d: %w", errCorrupt, c.Seq, err)
		}
		scratch := newAggregator(t.cfg.Interval, t.cfg.TopDiag, t.agg.isp, t.cfg.Views...)
		if err := scratch.restore(s.Agg); err != nil {
			return fmt.Errorf("%w: jump %d: %w", errCorrupt, c.Seq, err)
		}
	}
	return nil
}
