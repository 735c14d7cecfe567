package queue

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// segment is one segment file and the index of its records. The index is all
// the queue keeps in memory per entry (24 bytes); points stay on disk.
type segment struct {
	base   uint64
	path   string
	f      *os.File // read-write; the queue writes only to the last segment
	size   int64
	slots  []slot
	live   int  // unacknowledged slots
	first  int  // slots[:first] are all acknowledged
	dirty  bool // written since its last fsync
	broken bool // a failed write may have left bytes at the end: no more appends
	dead   bool // deleted; a concurrent fsync of it is moot
}

type slot struct {
	seq    uint64
	off    uint32 // < SegmentBytes: a record starts only in a segment below its size
	size   uint32 // record bytes, header included
	points uint32
	acked  bool
}

func (s *segment) lastSeq() uint64 {
	if len(s.slots) == 0 {
		return 0
	}
	return s.slots[len(s.slots)-1].seq
}

// find returns the index of the slot holding seq.
func (s *segment) find(seq uint64) (int, bool) {
	i := sort.Search(len(s.slots), func(i int) bool { return s.slots[i].seq >= seq })
	return i, i < len(s.slots) && s.slots[i].seq == seq
}

// segFor returns the index of the segment that holds, or would hold, seq:
// the last one whose base is not above it (0 if none is).
func (q *Queue) segFor(seq uint64) int {
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].base > seq })
	return max(i-1, 0)
}

func (q *Queue) active() *segment { return q.segs[len(q.segs)-1] }

// createSegment writes a new, empty segment whose records will start at base.
// The header goes to a temporary file that is synced and renamed, so a file
// with a segment name always has a whole header.
func (q *Queue) createSegment(base uint64) (*segment, error) {
	path := filepath.Join(q.opt.Dir, segName(base))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create segment: %w", err)
	}
	hdr := segHeader(base)
	if n, err := q.writeAt(f, hdr, 0); err != nil || n != len(hdr) {
		return fail(cmp.Or(err, io.ErrShortWrite))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := statefile.SyncDir(q.opt.Dir); err != nil {
		// Without a durable name the file's fsyncs would not make its
		// entries survive a power cut. The empty segment left behind is
		// harmless: a later rotation replaces it, a restart reads it as empty.
		f.Close()
		return nil, fmt.Errorf("create segment: sync directory: %w", err)
	}
	return &segment{base: base, path: path, f: f, size: segHeaderSize}, nil
}

// rotate starts a new segment for the following appends.
func (q *Queue) rotate() error {
	if len(q.segs) > 0 && q.active().base >= q.nextSeq {
		// Never reuse the name of the segment being replaced: skip a number.
		q.nextSeq = q.active().base + 1
	}
	s, err := q.createSegment(q.nextSeq)
	if err != nil {
		return err
	}
	q.segs = append(q.segs, s)
	q.diskBytes += s.size
	// The segment that took appends until now may hold nothing that waits
	// (all acknowledged, or nothing written but failed bytes): it can go.
	if prev := len(q.segs) - 2; prev >= 0 && q.segs[prev].live == 0 {
		q.deleteSegment(prev)
	}
	return nil
}

// deleteSegment removes segment i: its file and its index. Entries in it
// that were not acknowledged must have been counted by the caller.
func (q *Queue) deleteSegment(i int) {
	s := q.segs[i]
	s.dead = true
	s.f.Close()
	if err := os.Remove(s.path); err != nil {
		q.log.Warn("cannot remove a queue segment", "file", s.path, "err", err)
	}
	q.diskBytes -= s.size
	for j := s.first; j < len(s.slots); j++ {
		if sl := s.slots[j]; !sl.acked {
			q.live--
			q.livePoints -= int(sl.points)
			q.liveBytes -= int64(sl.size)
		}
	}
	q.segs = append(q.segs[:i], q.segs[i+1:]...)
}

// dropOldest deletes the oldest segment for the byte bound, counting its
// unacknowledged entries as lost. The durable callbacks of its entries still
// waiting for an fsync move to q.dropped, for Append to call once q.mu is
// released: a caller that waits for every earlier entry's confirmation (the
// accounting tailer's checkpoint) would otherwise wait forever for an entry
// that no longer exists. The loss itself is reported by dropped_*.
func (q *Queue) dropOldest() {
	s := q.segs[0]
	var entries, points int64
	hdr := make([]byte, recHeaderSize)
	for j := s.first; j < len(s.slots); j++ {
		sl := s.slots[j]
		if sl.acked {
			continue
		}
		entries++
		points += int64(sl.points)
		// The time range is in the record header; a header unreadable now
		// only leaves the range unreported.
		if _, err := s.f.ReadAt(hdr, int64(sl.off)); err == nil {
			if h, ok := parseRecHeader(hdr); ok && (h.minSec != 0 || h.maxSec != 0) {
				q.noteDroppedRange(h.minSec, h.maxSec)
			}
		}
	}
	last := s.lastSeq()
	n := 0
	for n < len(q.waiters) && q.waiters[n].seq <= last {
		n++
	}
	q.dropped = append(q.dropped, q.waiters[:n]...)
	q.waiters = q.waiters[n:]
	q.droppedEntries += entries
	q.droppedPoints += points
	q.episodeDrop += points
	if !q.overflow {
		q.overflow = true
		q.log.Warn("queue is full: dropping the oldest entries until it drains",
			"max_bytes", q.opt.MaxBytes, "dropped_points", points)
	}
	q.deleteSegment(0)
}

func (q *Queue) noteDroppedRange(lo, hi int64) {
	if q.droppedFirst == 0 || lo < q.droppedFirst {
		q.droppedFirst = lo
	}
	if hi > q.droppedLast {
		q.droppedLast = hi
	}
}

// noteDrained ends an overflow episode once the queue has room for two more
// segments, so that a queue hovering at its bound logs once, not per segment.
func (q *Queue) noteDrained() {
	if q.overflow && q.diskBytes <= q.opt.MaxBytes-2*q.opt.SegmentBytes {
		q.overflow = false
		q.log.Info("queue is below its bound again", "dropped_points", q.episodeDrop)
		q.episodeDrop = 0
	}
}

// makeRoom drops the oldest segments until need more bytes fit the bound.
// The caller has checked that need fits an empty queue.
func (q *Queue) makeRoom(need int64) error {
	for q.diskBytes+need > q.opt.MaxBytes {
		if len(q.segs) == 1 {
			if len(q.active().slots) == 0 {
				return nil
			}
			// The only segment takes appends: start another so that this
			// one can go.
			if err := q.rotate(); err != nil {
				return err
			}
			continue // the rotation may have freed the space already
		}
		q.dropOldest()
	}
	return nil
}
