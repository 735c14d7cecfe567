package queue

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Memory is a Store in memory, bounded in points: when an Append would
// exceed the bound, the oldest entries are dropped and counted. It is for the
// stdout sink, backfills and tests. Memory survives nothing, so an entry
// counts as durable only once the sink acknowledged it (or the bound dropped
// it, a counted loss): a source's position never moves past points that
// exist only here, and a crash makes it read them again.
type Memory struct {
	max int

	mu      sync.Mutex
	entries []memEntry // in Seq order; acked entries are removed at once
	points  int
	nextSeq uint64
	notify  chan struct{}

	dropped        atomic.Int64
	droppedEntries atomic.Int64
	droppedFirst   atomic.Int64 // unix seconds of the oldest dropped point
	droppedLast    atomic.Int64 // unix seconds of the newest dropped point
}

var _ agent.Store = (*Memory)(nil)

type memEntry struct {
	agent.Entry
	durable func()
}

// NewMemory returns a store holding at most maxPoints points (at least
// one entry is always kept, however large).
func NewMemory(maxPoints int) *Memory {
	return &Memory{max: maxPoints, nextSeq: 1, notify: make(chan struct{}, 1)}
}

// Append adds points; durable is called when the entry is acknowledged or
// dropped by the bound.
func (m *Memory) Append(points []agent.Point, durable func()) error {
	var dropped []func()
	m.mu.Lock()
	m.entries = append(m.entries, memEntry{Entry: agent.Entry{Seq: m.nextSeq, Points: points}, durable: durable})
	m.nextSeq++
	m.points += len(points)
	for m.points > m.max && len(m.entries) > 1 {
		old := m.entries[0]
		m.entries[0] = memEntry{}
		m.entries = m.entries[1:]
		m.points -= len(old.Points)
		m.countDrop(old.Points)
		if old.durable != nil {
			dropped = append(dropped, old.durable)
		}
	}
	m.mu.Unlock()
	for _, f := range dropped {
		f()
	}
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

func (m *Memory) countDrop(pts []agent.Point) {
	m.dropped.Add(int64(len(pts)))
	first := m.droppedEntries.Add(1) == 1
	for i, p := range pts {
		sec := p.Time.Unix()
		if first && i == 0 {
			m.droppedFirst.Store(sec)
			m.droppedLast.Store(sec)
		}
		if sec < m.droppedFirst.Load() {
			m.droppedFirst.Store(sec)
		}
		if sec > m.droppedLast.Load() {
			m.droppedLast.Store(sec)
		}
	}
}

// Oldest returns the oldest entry.
func (m *Memory) Oldest() (agent.Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return agent.Entry{}, false
	}
	return m.entries[0].Entry, true
}

// Newest returns the newest entry.
func (m *Memory) Newest() (agent.Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return agent.Entry{}, false
	}
	return m.entries[len(m.entries)-1].Entry, true
}

// After returns the oldest entry above seq.
func (m *Memory) After(seq uint64) (agent.Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.Seq > seq {
			return e.Entry, true
		}
	}
	return agent.Entry{}, false
}

// Holds reports whether entry seq still waits.
func (m *Memory) Holds(seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, found := slices.BinarySearchFunc(m.entries, seq, func(e memEntry, s uint64) int { return cmp.Compare(e.Seq, s) })
	return found
}

// Ack removes entry seq and calls its durable callback.
func (m *Memory) Ack(seq uint64) error {
	m.mu.Lock()
	for i, e := range m.entries {
		if e.Seq == seq {
			m.points -= len(e.Points)
			m.entries = append(m.entries[:i:i], m.entries[i+1:]...)
			m.mu.Unlock()
			if e.durable != nil {
				e.durable()
			}
			return nil
		}
	}
	m.mu.Unlock()
	return nil
}

// Notify is signalled after every Append.
func (m *Memory) Notify() <-chan struct{} { return m.notify }

// Pending returns what waits; the byte size is unknown (0).
func (m *Memory) Pending() (entries, points int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries), m.points, 0
}

// Stats reports what the bound dropped.
func (m *Memory) Stats() []agent.Field {
	return []agent.Field{
		{Key: "dropped_points", Value: m.dropped.Load()},
		{Key: "dropped_entries", Value: m.droppedEntries.Load()},
		{Key: "dropped_first_unix", Value: m.droppedFirst.Load()},
		{Key: "dropped_last_unix", Value: m.droppedLast.Load()},
	}
}
