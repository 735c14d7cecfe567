package queue

import (
	"fmt"
	"io"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Append stores points as one entry and returns once the record has reached
// the OS (and, under SyncAlways, the disk). durable is called once the entry
// is as safe as the sync policy makes it — before Append returns under
// SyncAlways and SyncNever, after the covering fsync under SyncInterval — or,
// if the byte bound drops the entry before that, when it is dropped (the
// loss is counted in dropped_*). An error (a full disk, an entry larger than
// the bound, a closed queue) means nothing was stored.
// The queue keeps a reference to points until the next Append: callers must
// not change them.
func (q *Queue) Append(points []agent.Point, durable func()) error {
	bp, _ := q.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	rec := encodeRecord(*bp, points)
	defer func() { *bp = rec; q.bufs.Put(bp) }()

	q.mu.Lock()
	seq, now, err := q.appendLocked(rec, len(points), durable)
	if err == nil {
		q.recent = cached{seq: seq, points: points}
	}
	// Room made for this entry (even if its write then failed) may have
	// dropped entries still waiting for an fsync: confirm them now, outside
	// the lock, since a callback may call back into the queue.
	dropped := q.dropped
	q.dropped = nil
	q.mu.Unlock()
	for _, w := range dropped {
		w.fn()
	}
	if err != nil {
		return err
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
	if now && durable != nil {
		durable()
	}
	return nil
}

// appendLocked writes one encoded record. It reports the sequence number
// given and whether durable may be called at once (otherwise it waits in
// q.waiters for an fsync).
func (q *Queue) appendLocked(rec []byte, points int, durable func()) (seq uint64, now bool, err error) {
	if q.closed {
		return 0, false, ErrClosed
	}
	need := int64(len(rec))
	if need+segHeaderSize > q.opt.MaxBytes || len(rec)-recHeaderSize > maxBody {
		return 0, false, fmt.Errorf("append: entry of %d bytes does not fit a queue bounded to %d bytes", need, q.opt.MaxBytes)
	}
	act := q.active()
	if act.broken || (len(act.slots) > 0 && act.size >= q.opt.SegmentBytes) {
		if err := q.rotate(); err != nil {
			q.writeErrors++
			return 0, false, fmt.Errorf("append: %w", err)
		}
	}
	if err := q.makeRoom(need); err != nil {
		q.writeErrors++
		return 0, false, fmt.Errorf("append: %w", err)
	}
	act = q.active()
	seq = q.nextSeq
	// The number is used up even if the write fails: the bytes of a failed
	// write may have reached the file, and no two records may share a seq.
	q.nextSeq++
	setRecSeq(rec, seq)
	if err := q.writeRecord(act, rec); err != nil {
		return 0, false, err
	}
	act.slots = append(act.slots, slot{seq: seq, off: uint32(act.size), size: uint32(need), points: uint32(points)})
	act.size += need
	act.live++
	act.dirty = true
	q.diskBytes += need
	q.live++
	q.livePoints += points
	q.liveBytes += need
	q.noteDrained()

	switch q.opt.Sync {
	case SyncNever:
		return seq, true, nil
	case SyncAlways:
		if err := act.f.Sync(); err == nil {
			act.dirty = false
			return seq, true, nil
		} else {
			q.noteSyncError(err)
		}
	}
	// SyncInterval, or SyncAlways whose fsync failed: the background loop
	// calls durable after its next successful fsync.
	if durable != nil {
		q.waiters = append(q.waiters, waiter{seq: seq, fn: durable})
	}
	return seq, false, nil
}

// writeRecord appends rec to the segment. A failed write (a full disk) is
// undone by cutting the file back, so nothing stored before is damaged and
// the next Append can succeed; if even that fails the segment takes no more
// appends (a restart cuts the stray bytes off as a torn tail).
func (q *Queue) writeRecord(s *segment, rec []byte) error {
	n, err := q.writeAt(s.f, rec, s.size)
	if err == nil && n != len(rec) {
		err = io.ErrShortWrite
	}
	if err == nil {
		if q.writeFailing {
			q.writeFailing = false
			q.log.Info("queue writes work again")
		}
		return nil
	}
	q.writeErrors++
	if terr := s.f.Truncate(s.size); terr != nil {
		s.broken = true
		q.log.Error("cannot cut a failed write off a queue segment; starting a new one", "file", s.path, "err", terr)
	}
	if !q.writeFailing {
		q.writeFailing = true
		q.log.Error("cannot write to the queue; appends fail until it works again", "err", err)
	}
	return fmt.Errorf("append: write %s: %w", s.path, err)
}

func (q *Queue) noteSyncError(err error) {
	q.syncErrors++
	if !q.syncFailing {
		q.syncFailing = true
		q.log.Error("cannot fsync the queue; entries are not confirmed durable until it works again", "err", err)
	}
}
