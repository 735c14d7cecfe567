package acct

import "time"

// The journal's bounds: how the pending cuts and the snapshots they hold
// stay small while a sink is slow or one batch is never confirmed.

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
func (j *journal) boundPendingLocked() {
	if len(j.pending) <= j.maxPending {
		return
	}
	oldest := j.oldestUnconfirmedLocked()
	if oldest == nil {
		return
	}
	pending := j.pending
	out := make([]*pendingCut, 0, len(pending))
	for i := 0; i < len(pending); {
		if !pending[i].done {
			out = append(out, pending[i])
			i++
			continue
		}
		k, last := i, -1
		for ; k < len(pending) && pending[k].done; k++ {
			if pending[k].snap != nil {
				last = k
			}
		}
		if last > i {
			p := pending[last]
			out = append(out, &pendingCut{
				c:    cut{Seq: p.c.Seq, ClosedUpTo: p.c.ClosedUpTo, Snapshot: p.snap},
				snap: p.snap, done: true, at: p.at,
			})
			out = append(out, pending[last+1:k]...)
		} else {
			out = append(out, pending[i:k]...)
		}
		i = k
	}
	j.stuckLog.log("a sink has not confirmed an accounting batch: the accounting checkpoint cannot move past it, "+
		"and a restart will read the accounting files again from there",
		"batch", oldest.c.Seq, "unconfirmed_for", j.now().Sub(oldest.at).Round(time.Second).String(),
		"pending_cuts", len(j.pending), "kept", len(out))
	j.pending = out
}

// pruneSnapsLocked frees the snapshots that can no longer be committed:
// within a run of confirmed cuts only the newest snapshot is ever committed
// (or made a jump), so the older ones of the run go. This keeps the snapshot
// at the end of such a run from being the one thinLocked drops, which would
// leave boundPendingLocked nothing to fold the run into.
func (j *journal) pruneSnapsLocked() {
	var keep *pendingCut // newest snapshot so far in the current confirmed run
	for _, p := range j.pending {
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

func (j *journal) oldestUnconfirmedLocked() *pendingCut {
	for _, p := range j.pending {
		if !p.done {
			return p
		}
	}
	return nil
}

// maxPendingSnaps bounds the snapshots held for unconfirmed batches while a
// sink is slow: beyond it the second newest is dropped, so commits still go
// through the oldest ones in order and then jump to the newest.
const maxPendingSnaps = 32

func (j *journal) thinLocked() {
	n := 0
	for _, p := range j.pending {
		if p.snap != nil {
			n++
		}
	}
	// A jump keeps its snapshot in its journal entry anyway.
	if k := len(j.pending) - 2; n > maxPendingSnaps && k > 0 && j.pending[k].c.Snapshot == nil {
		j.pending[k].snap = nil
	}
}
