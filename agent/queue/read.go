package queue

import (
	"fmt"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Oldest returns the oldest entry not yet acknowledged. The points of the
// entries that Oldest, Newest and After return may be shared with the
// queue's one-entry caches and with other callers: read them, do not change
// them.
func (q *Queue) Oldest() (agent.Entry, bool) {
	return q.read(func() (int, int, bool) {
		for si, s := range q.segs {
			for s.first < len(s.slots) && s.slots[s.first].acked {
				s.first++
			}
			if s.first < len(s.slots) {
				return si, s.first, true
			}
		}
		return 0, 0, false
	})
}

// Newest returns the newest entry not yet acknowledged.
func (q *Queue) Newest() (agent.Entry, bool) {
	return q.read(func() (int, int, bool) {
		for si := len(q.segs) - 1; si >= 0; si-- {
			s := q.segs[si]
			if s.live == 0 {
				continue
			}
			for i := len(s.slots) - 1; i >= s.first; i-- {
				if !s.slots[i].acked {
					return si, i, true
				}
			}
		}
		return 0, 0, false
	})
}

// After returns the oldest unacknowledged entry with a sequence number above
// seq.
func (q *Queue) After(seq uint64) (agent.Entry, bool) {
	return q.read(func() (int, int, bool) {
		if len(q.segs) == 0 || seq == ^uint64(0) {
			return 0, 0, false
		}
		start := q.segFor(seq + 1)
		for si := start; si < len(q.segs); si++ {
			s := q.segs[si]
			if s.live == 0 {
				continue
			}
			i := s.first
			if si == start {
				j, _ := s.find(seq + 1)
				i = max(i, j)
			}
			for ; i < len(s.slots); i++ {
				if !s.slots[i].acked {
					return si, i, true
				}
			}
		}
		return 0, 0, false
	})
}

// read returns the entry that pick (called with q.mu held) chooses. An entry
// that cannot be read back (the disk damaged it after Open) is logged,
// counted as dropped and skipped, so one bad record never stalls delivery.
func (q *Queue) read(pick func() (seg, slot int, ok bool)) (agent.Entry, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return agent.Entry{}, false
		}
		si, i, ok := pick()
		if !ok {
			q.mu.Unlock()
			return agent.Entry{}, false
		}
		s := q.segs[si]
		sl := s.slots[i]
		for _, c := range []cached{q.recent, q.lastRead} {
			if c.seq == sl.seq && c.points != nil {
				q.mu.Unlock()
				return agent.Entry{Seq: sl.seq, Points: c.points}, true
			}
		}
		// Read under the lock so that the file cannot be closed meanwhile;
		// decoding, the costly part, happens outside it.
		rec := make([]byte, sl.size)
		_, err := s.f.ReadAt(rec, int64(sl.off))
		q.mu.Unlock()

		var points []agent.Point
		if err == nil {
			points, err = decodeRecord(rec, sl.seq)
		}
		q.mu.Lock()
		if err != nil {
			q.skipUnreadable(sl.seq, err)
			q.mu.Unlock()
			continue
		}
		q.lastRead = cached{seq: sl.seq, points: points}
		q.mu.Unlock()
		return agent.Entry{Seq: sl.seq, Points: points}, true
	}
}

func decodeRecord(rec []byte, seq uint64) ([]agent.Point, error) {
	h, ok := parseRecHeader(rec)
	if !ok || h.seq != seq || int(h.bodyLen) != len(rec)-recHeaderSize {
		return nil, fmt.Errorf("%w: record header of seq %d", ErrCorrupt, seq)
	}
	return DecodePoints(rec[recHeaderSize:])
}

// skipUnreadable acknowledges an entry that cannot be read, counting it as
// dropped.
func (q *Queue) skipUnreadable(seq uint64, err error) {
	si := q.segFor(seq)
	if si >= len(q.segs) {
		return
	}
	s := q.segs[si]
	i, found := s.find(seq)
	if !found || s.slots[i].acked {
		return
	}
	q.readErrors++
	q.droppedEntries++
	q.droppedPoints += int64(s.slots[i].points)
	q.log.Error("cannot read a queued entry back; it is dropped", "seq", seq, "points", s.slots[i].points, "err", err)
	q.ackLocked(si, i)
}

// Holds reports whether entry seq waits: appended, neither acknowledged nor
// dropped.
func (q *Queue) Holds(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.segs) == 0 || seq == 0 || seq >= q.nextSeq {
		return false
	}
	si := q.segFor(seq)
	i, found := q.segs[si].find(seq)
	return found && !q.segs[si].slots[i].acked
}

// Ack removes entry seq for good. Acknowledging an entry that is gone (acked
// before, or dropped by the bound) is not an error; one never appended is.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if seq == 0 || seq >= q.nextSeq {
		return fmt.Errorf("ack: seq %d was never appended (next is %d)", seq, q.nextSeq)
	}
	if len(q.segs) == 0 {
		return nil
	}
	si := q.segFor(seq)
	i, found := q.segs[si].find(seq)
	if !found || q.segs[si].slots[i].acked {
		return nil
	}
	q.ackLocked(si, i)
	return nil
}

// ackLocked marks slot i of segment si acknowledged and deletes the segment
// once nothing in it waits (except the one taking appends).
func (q *Queue) ackLocked(si, i int) {
	s := q.segs[si]
	sl := &s.slots[i]
	sl.acked = true
	s.live--
	q.live--
	q.livePoints -= int(sl.points)
	q.liveBytes -= int64(sl.size)
	if s.live == 0 && si != len(q.segs)-1 {
		q.deleteSegment(si)
		q.noteDrained()
	}
}
