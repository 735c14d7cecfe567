package acct

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const (
	// maxPendingCuts is how many cuts may wait for a commit before the
	// confirmed runs among them are folded into jumps. One batch whose Done
	// never comes (a store that refused it) holds every later commit back;
	// without a bound the journal, rewritten at every cut, would grow by a
	// cut every Interval and each write cost more than the last.
	maxPendingCuts = 1000
	// stuckLogEvery rate-limits the report of such a batch.
	stuckLogEvery = time.Hour
)

// boundPendingLocked keeps the pending cuts at most maxPending long, when
// that can be done without losing anything a crash would need.
//
// A crash replays the pending cuts from the committed snapshot so that every
// unconfirmed batch is emitted again with identical points. A cut whose batch
// is confirmed needs no replay for its own sake: it is replayed only to
// rebuild the state the next cuts start from. So a run of confirmed cuts
// behind an unconfirmed one can be replaced by one jump that holds the state
// after the run (the snapshot of its newest cut that still has one). The
// cuts before the jump, the jump and the cuts after it replay exactly as
// before: unconfirmed batches byte-identically, the confirmed run not at all
// (its points are safe). Commits still go in order, as a jump is committed
// like any confirmed cut once everything before it is.
//
// Only unconfirmed batches are kept one cut each: if more than maxPending of
// them wait (a store refusing batch after batch) they are all kept, as each
// one is needed to emit its batch again after a restart.
func (t *Tailer) boundPendingLocked() {
	if len(t.pending) <= t.maxPending {
		return
	}
	oldest := t.oldestUnconfirmedLocked()
	if oldest == nil {
		return
	}
	out := make([]*pendingCut, 0, len(t.pending))
	for i := 0; i < len(t.pending); {
		if !t.pending[i].done {
			out = append(out, t.pending[i])
			i++
			continue
		}
		j, last := i, -1
		for ; j < len(t.pending) && t.pending[j].done; j++ {
			if t.pending[j].snap != nil {
				last = j
			}
		}
		if last > i {
			p := t.pending[last]
			out = append(out, &pendingCut{
				c:    cut{Seq: p.c.Seq, ClosedUpTo: p.c.ClosedUpTo, Snapshot: p.snap},
				snap: p.snap, done: true, at: p.at,
			})
			out = append(out, t.pending[last+1:j]...)
		} else {
			out = append(out, t.pending[i:j]...)
		}
		i = j
	}
	t.stuckLog.log("a sink has not confirmed an accounting batch: the accounting checkpoint cannot move past it, "+
		"and a restart will read the accounting files again from there",
		"batch", oldest.c.Seq, "unconfirmed_for", t.now().Sub(oldest.at).Round(time.Second).String(),
		"pending_cuts", len(t.pending), "kept", len(out))
	t.pending = out
}

// pruneSnapsLocked frees the snapshots that can no longer be committed:
// within a run of confirmed cuts only the newest snapshot is ever committed
// (or made a jump), so the older ones of the run go. This keeps the snapshot
// at the end of such a run from being the one thinLocked drops, which would
// leave boundPendingLocked nothing to fold the run into.
func (t *Tailer) pruneSnapsLocked() {
	var keep *pendingCut // newest snapshot so far in the current confirmed run
	for _, p := range t.pending {
		switch {
		case !p.done:
			keep = nil
		case p.snap != nil:
			if keep != nil {
				keep.snap = nil
			}
			keep = p
		}
	}
}

func (t *Tailer) oldestUnconfirmedLocked() *pendingCut {
	for _, p := range t.pending {
		if !p.done {
			return p
		}
	}
	return nil
}

// countPendingLocked updates the pending_cuts stat: batches emitted whose
// Done has not come (a jump's batches all came).
func (t *Tailer) countPendingLocked() {
	n := 0
	for _, p := range t.pending {
		if !p.done {
			n++
		}
	}
	t.st.pendingCuts.Store(int64(n))
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
	var errs []error
	for _, e := range t.files {
		if e.f != nil {
			errs = append(errs, e.f.Close())
		}
	}
	t.files = entriesFrom(s.Files)
	errs = append(errs, t.discover(t.now()))
	t.mu.Lock()
	for _, p := range t.pending {
		if p.c.Seq == c.Seq {
			p.snap, p.done, p.at = c.Snapshot, true, t.now()
		}
	}
	if t.advanceLocked() {
		errs = append(errs, t.saveLocked())
	}
	t.countPendingLocked()
	t.mu.Unlock()
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
		scratch := newAggregator(t.cfg.Interval, t.cfg.TopDiag, t.agg.isp)
		if err := scratch.restore(s.Agg); err != nil {
			return fmt.Errorf("%w: jump %d: %w", errCorrupt, c.Seq, err)
		}
	}
	return nil
}
