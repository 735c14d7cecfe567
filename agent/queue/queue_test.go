package queue

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"

	"github.com/pmta-agent/pmta-agent/agent"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestAppendReadAck(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, Options{Dir: dir})
	batches := [][]agent.Point{makePoints(1, 10, t0), makePoints(2, 20, t0.Add(time.Minute)), makePoints(3, 30, t0.Add(2*time.Minute))}
	for _, b := range batches {
		mustAppend(t, q, b)
	}
	check := func(what string, e agent.Entry, ok bool, seq uint64) {
		t.Helper()
		if !ok || e.Seq != seq {
			t.Fatalf("%s = seq %d (%v), want %d", what, e.Seq, ok, seq)
		}
		if d := diffPoints(e.Points, batches[seq-1]); d != "" {
			t.Fatalf("%s: %s", what, d)
		}
	}
	e, ok := q.Oldest()
	check("Oldest", e, ok, 1)
	e, ok = q.Newest()
	check("Newest", e, ok, 3)
	e, ok = q.After(1)
	check("After(1)", e, ok, 2)
	if entries, points, bytes := q.Pending(); entries != 3 || points != 60 || bytes <= 0 {
		t.Fatalf("Pending = %d, %d, %d", entries, points, bytes)
	}

	// Out of order: 2 goes first; 1 stays the oldest.
	if err := q.Ack(2); err != nil {
		t.Fatal(err)
	}
	e, ok = q.Oldest()
	check("Oldest after Ack(2)", e, ok, 1)
	e, ok = q.After(1)
	check("After(1) after Ack(2)", e, ok, 3)
	if err := q.Ack(2); err != nil {
		t.Fatalf("second Ack(2): %v", err)
	}
	if err := q.Ack(99); err == nil {
		t.Fatal("Ack of a seq never appended: no error")
	}
	if err := q.Ack(1); err != nil {
		t.Fatal(err)
	}
	e, ok = q.Oldest()
	check("Oldest after Ack(1)", e, ok, 3)
	if _, ok := q.After(3); ok {
		t.Fatal("After(3) found an entry")
	}
	q.Ack(3)
	if _, ok := q.Oldest(); ok {
		t.Fatal("Oldest of an empty queue found an entry")
	}
	if _, ok := q.Newest(); ok {
		t.Fatal("Newest of an empty queue found an entry")
	}
	if entries, points, bytes := q.Pending(); entries != 0 || points != 0 || bytes != 0 {
		t.Fatalf("Pending of an empty queue = %d, %d, %d", entries, points, bytes)
	}
}

// Entries come back from disk (not a cache) identical after a restart; an
// entry acknowledged behind an unacknowledged one may come back, one at the
// front may not.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, Options{Dir: dir, SegmentBytes: 1})
	var batches [][]agent.Point
	for i := range 6 {
		b := makePoints(uint64(i), 50+i, t0.Add(time.Duration(i)*time.Second))
		batches = append(batches, b)
		mustAppend(t, q, b)
	}
	for _, s := range []uint64{1, 2, 5} {
		q.Ack(s)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	q = openQ(t, Options{Dir: dir, SegmentBytes: 1})
	var got []uint64
	for seq := uint64(0); ; {
		e, ok := q.After(seq)
		if !ok {
			break
		}
		if d := diffPoints(e.Points, batches[e.Seq-1]); d != "" {
			t.Fatalf("seq %d: %s", e.Seq, d)
		}
		got = append(got, e.Seq)
		seq = e.Seq
	}
	if want := []uint64{3, 4, 6}; !equalSeqs(got, want) && !equalSeqs(got, []uint64{3, 4, 5, 6}) {
		t.Fatalf("entries after reopen = %v, want %v (5 may be replayed)", got, want)
	}
	mustAppend(t, q, makePoints(9, 1, t0))
	if e, _ := q.Newest(); e.Seq != 7 {
		t.Fatalf("first seq after reopen = %d, want 7", e.Seq)
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Sequence numbers never go back: not after everything was acknowledged,
// not after the bound dropped everything, not after a restart.
func TestSeqNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 64 << 10}
	last := uint64(0)
	for round := range 4 {
		q := openQ(t, o)
		for i := range 5 {
			mustAppend(t, q, makePoints(uint64(i), 40, t0))
			e, _ := q.Newest()
			if e.Seq <= last {
				t.Fatalf("round %d: seq %d after %d", round, e.Seq, last)
			}
			last = e.Seq
			if round%2 == 0 {
				q.Ack(e.Seq)
			}
		}
		q.Close()
	}
}

func TestDurablePolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(string(p), func(t *testing.T) {
			q := openQ(t, Options{Dir: t.TempDir(), Sync: p})
			called := false
			if err := q.Append(makePoints(1, 5, t0), func() { called = true }); err != nil {
				t.Fatal(err)
			}
			if !called {
				t.Fatal("durable not called before Append returned")
			}
		})
	}
	t.Run("interval", func(t *testing.T) {
		q := openQ(t, Options{Dir: t.TempDir(), Sync: SyncInterval})
		var calls atomic.Int32
		for range 3 {
			q.Append(makePoints(1, 5, t0), func() { calls.Add(1) })
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("%d durable calls before any fsync", n)
		}
		q.syncOnce()
		if n := calls.Load(); n != 3 {
			t.Fatalf("%d durable calls after an fsync, want 3", n)
		}
		q.syncOnce()
		if n := calls.Load(); n != 3 {
			t.Fatalf("%d durable calls after a second fsync, want still 3", n)
		}
		q.Append(makePoints(1, 5, t0), func() { calls.Add(1) })
		q.Close()
		if n := calls.Load(); n != 4 {
			t.Fatalf("Close did not confirm the last entry: %d calls", n)
		}
	})
	t.Run("interval loop", func(t *testing.T) {
		q := openQ(t, Options{Dir: t.TempDir(), SyncEvery: 10 * time.Millisecond})
		done := make(chan struct{})
		q.Append(makePoints(1, 5, t0), func() { close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the background loop never confirmed the entry")
		}
	})
}

func TestNotify(t *testing.T) {
	q := openQ(t, Options{Dir: t.TempDir()})
	select {
	case <-q.Notify():
		t.Fatal("signalled before any Append")
	default:
	}
	mustAppend(t, q, makePoints(1, 1, t0))
	mustAppend(t, q, makePoints(1, 1, t0)) // must not block
	select {
	case <-q.Notify():
	default:
		t.Fatal("not signalled after Append")
	}
}

// The bound drops the oldest entries, counts them with their time range,
// logs once per episode, and calls the durable callback of a dropped, unsynced
// entry when it drops it (exactly once), so that in-order confirmation (the
// accounting checkpoint) never waits for an entry that is gone.
func TestBoundDropsOldest(t *testing.T) {
	rec := logtest.New()
	const maxBytes = 128 << 10
	q := openQ(t, Options{Dir: t.TempDir(), MaxBytes: maxBytes, Log: rec.Logger()})
	var confirmed [400]atomic.Int32
	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			at := t0.Add(time.Duration(i) * time.Minute)
			if err := q.Append(makePoints(uint64(i), 50, at), func() { confirmed[i].Add(1) }); err != nil {
				t.Fatal(err)
			}
			if b := stat(q, "bytes"); b > maxBytes {
				t.Fatalf("after entry %d the queue holds %d bytes, bound %d", i, b, maxBytes)
			}
		}
	}
	appendN(0, 200)
	dropped := stat(q, "dropped_entries")
	if dropped == 0 {
		t.Fatal("nothing dropped")
	}
	if p := stat(q, "dropped_points"); p != dropped*50 {
		t.Fatalf("dropped_points = %d for %d entries", p, dropped)
	}
	// Oldest first: entries 0..dropped-1 went, with their minutes.
	if first, last := stat(q, "dropped_first_unix"), stat(q, "dropped_last_unix"); first != t0.Unix() ||
		last != t0.Add(time.Duration(dropped-1)*time.Minute).Unix() {
		t.Fatalf("dropped range %d..%d, want %d..%d", first, last, t0.Unix(), t0.Add(time.Duration(dropped-1)*time.Minute).Unix())
	}
	e, _ := q.Oldest()
	if e.Seq != uint64(dropped+1) {
		t.Fatalf("oldest seq %d after %d drops", e.Seq, dropped)
	}
	entries, _, _ := q.Pending()
	if int64(entries)+dropped != 200 {
		t.Fatalf("%d pending + %d dropped != 200", entries, dropped)
	}
	// No fsync yet (SyncInterval, SyncEvery an hour): only the dropped
	// entries are confirmed, each once, by the Append that dropped them.
	for i := range 200 {
		want := int32(0)
		if int64(i) < dropped {
			want = 1
		}
		if n := confirmed[i].Load(); n != want {
			t.Fatalf("before fsync, entry %d (dropped=%v): %d durable calls, want %d", i, int64(i) < dropped, n, want)
		}
	}
	q.syncOnce()
	for i := range 200 {
		if n := confirmed[i].Load(); n != 1 {
			t.Fatalf("after fsync, entry %d (dropped=%v): %d durable calls, want 1", i, int64(i) < dropped, n)
		}
	}
	if n := rec.Count("queue is full"); n != 1 {
		t.Fatalf("overflow logged %d times in one episode", n)
	}
	// Drain: the episode ends; the next overflow is a new episode.
	for {
		e, ok := q.Oldest()
		if !ok {
			break
		}
		q.Ack(e.Seq)
	}
	if n := rec.Count("below its bound"); n != 1 {
		t.Fatalf("end of episode logged %d times", n)
	}
	appendN(200, 200)
	if n := rec.Count("queue is full"); n != 2 {
		t.Fatalf("second episode: overflow logged %d times in all, want 2", n)
	}
}

func TestEntryLargerThanBound(t *testing.T) {
	q := openQ(t, Options{Dir: t.TempDir(), MaxBytes: 64 << 10})
	err := q.Append(makePoints(1, 5000, t0), nil)
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("err = %v", err)
	}
	mustAppend(t, q, makePoints(1, 10, t0))
}

func TestClosed(t *testing.T) {
	q := openQ(t, Options{Dir: t.TempDir()})
	mustAppend(t, q, makePoints(1, 1, t0))
	q.Close()
	if err := q.Append(makePoints(1, 1, t0), nil); err != ErrClosed {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := q.Ack(1); err != ErrClosed {
		t.Fatalf("Ack after Close: %v", err)
	}
	if _, ok := q.Oldest(); ok {
		t.Fatal("Oldest after Close found an entry")
	}
}

// Appends, reads, acks and the background fsync at once, for the race
// detector; every entry is confirmed and read exactly once.
func TestConcurrent(t *testing.T) {
	q := openQ(t, Options{Dir: t.TempDir(), MaxBytes: 1 << 30, SegmentBytes: 64 << 10, SyncEvery: time.Millisecond})
	const n = 300
	var confirmed atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := q.Append(makePoints(uint64(i), 20, t0), func() { confirmed.Add(1) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := map[uint64]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		e, ok := q.Oldest()
		if !ok {
			select {
			case <-q.Notify():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if seen[e.Seq] {
			t.Fatalf("entry %d returned after its Ack", e.Seq)
		}
		seen[e.Seq] = true
		q.Stats()
		q.Newest()
		if err := q.Ack(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("read %d entries, want %d", len(seen), n)
	}
	q.Close()
	if c := confirmed.Load(); c != n {
		t.Fatalf("%d durable calls, want %d", c, n)
	}
	if segs := segFiles(t, q.opt.Dir); len(segs) != 1 {
		t.Fatalf("%d segment files left after everything was acknowledged", len(segs))
	}
}
