package queue

import (
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestModel runs random appends, out-of-order acks and reopens over many
// small segments against a plain model of the live set.
func TestModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QUEUE_MODEL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set QUEUE_MODEL_SEED to repeat)", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4 << 10}
	q := openQ(t, o)
	live := map[uint64]int{} // seq -> points
	var lastSeq uint64
	check := func(step int) {
		t.Helper()
		var want []uint64
		points := 0
		for s, n := range live {
			want = append(want, s)
			points += n
		}
		slices.Sort(want)
		e, ok := q.Oldest()
		if ok != (len(want) > 0) || ok && e.Seq != want[0] {
			t.Fatalf("step %d: Oldest = %d %v, live %v", step, e.Seq, ok, want)
		}
		e, ok = q.Newest()
		if ok && e.Seq != want[len(want)-1] {
			t.Fatalf("step %d: Newest = %d, live %v", step, e.Seq, want)
		}
		if ok && len(e.Points) != live[e.Seq] {
			t.Fatalf("step %d: Newest has %d points, want %d", step, len(e.Points), live[e.Seq])
		}
		if len(want) > 0 {
			k := want[r.IntN(len(want))] - uint64(r.IntN(2))
			e, ok = q.After(k)
			i, _ := slices.BinarySearch(want, k+1)
			if ok != (i < len(want)) || ok && e.Seq != want[i] {
				t.Fatalf("step %d: After(%d) = %d %v, live %v", step, k, e.Seq, ok, want)
			}
		}
		if n, p, _ := q.Pending(); n != len(want) || p != points {
			t.Fatalf("step %d: Pending = %d, %d; want %d, %d", step, n, p, len(want), points)
		}
	}
	for step := range 1500 {
		switch x := r.IntN(100); {
		case x < 55:
			n := 1 + r.IntN(30)
			mustAppend(t, q, makePoints(uint64(step), n, t0))
			e, _ := q.Newest()
			if e.Seq <= lastSeq {
				t.Fatalf("step %d: seq %d after %d", step, e.Seq, lastSeq)
			}
			lastSeq = e.Seq
			live[e.Seq] = n
		case x < 95 && len(live) > 0:
			var seqs []uint64
			for s := range live {
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			// Mostly near the front, sometimes anywhere.
			i := r.IntN(min(len(seqs), 3))
			if r.IntN(4) == 0 {
				i = r.IntN(len(seqs))
			}
			if err := q.Ack(seqs[i]); err != nil {
				t.Fatal(err)
			}
			delete(live, seqs[i])
		case x >= 98:
			q.Close()
			q = openQ(t, o)
			// Entries acknowledged out of order may come back; adopt them.
			for prev := uint64(0); ; {
				e, ok := q.After(prev)
				if !ok {
					break
				}
				if _, ok := live[e.Seq]; !ok {
					live[e.Seq] = len(e.Points)
				}
				prev = e.Seq
			}
		}
		check(step)
	}
	if stat(q, "dropped_entries") != 0 {
		t.Fatal("the bound dropped entries; the model does not expect that")
	}
	// Every segment but the one taking appends holds a live entry.
	q.mu.Lock()
	for _, s := range q.segs[:len(q.segs)-1] {
		if s.live == 0 {
			t.Errorf("segment %s holds nothing live and was kept", s.path)
		}
	}
	q.mu.Unlock()
}
