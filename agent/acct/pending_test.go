package acct

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"

	"github.com/pmta-agent/pmta-agent/agent"
)

const stuckMsg = "ERROR a sink has not confirmed an accounting batch"

// stuckRun is a tailer whose first batch is never confirmed while every
// later one is, over many times maxPending cuts, with late records and a
// rotation to a second file (moved into the other watched directory) on the
// way.
type stuckRun struct {
	h       *harness
	log     *logtest.Recorder
	first   agent.Batch   // the batch whose Done is held back
	emitted []agent.Batch // every batch, in order
	written []genRecord
}

func runStuck(t *testing.T) *stuckRun {
	// maxPending above maxPendingSnaps, as in production, so that thinning
	// the snapshots is part of the run.
	const maxPending, cuts = maxPendingSnaps + 8, 350
	r := &stuckRun{h: newHarness(t), log: logtest.New()}
	h := r.h
	h.log = r.log.Logger()
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	f1 := filepath.Join(h.dirA, "acct-2024-01-15-0001.csv")
	appendFile(t, f0, []byte(header23+"\r\n"))
	h.now = testStart
	h.start()
	h.tl.journal.maxPending = maxPending
	h.tl.SetEmit(func(b agent.Batch) {
		r.emitted = append(r.emitted, b)
		h.db.write(b.Points)
		if len(r.emitted) == 1 {
			r.first = b
			return
		}
		b.Done()
	})
	h.poll()
	initialCommit := h.stat("last_commit_unix")
	if initialCommit != testStart.Unix() {
		t.Fatalf("last_commit_unix = %d after the first start, want %d", initialCommit, testStart.Unix())
	}
	path := f0
	var peakEarly int64 // the checkpoint's size over the first cuts
	prevPending := 0
	for i := range cuts {
		switch i {
		case cuts / 3: // rotation: a new file, the old one moves away
			path = f1
			appendFile(t, f1, []byte(header23+"\r\n"))
		case cuts/3 + 5:
			if err := os.Rename(f0, filepath.Join(h.dirB, filepath.Base(f0))); err != nil {
				t.Fatal(err)
			}
		}
		data, recs := records(uint64(i), 5, h.now)
		r.written = append(r.written, recs...)
		if i%7 == 3 { // records for intervals already closed
			late, lrecs := records(uint64(1000+i), 2, h.now.Add(-time.Minute))
			data = append(data, late...)
			r.written = append(r.written, lrecs...)
		}
		appendFile(t, path, data)
		h.now = h.now.Add(DefaultConfig().Interval)
		h.poll()
		n := len(h.tl.journal.pending)
		if n > maxPending {
			t.Fatalf("cut %d: %d cuts pending, bound %d", i, n, maxPending)
		}
		// When the bound is reached, all confirmed cuts after the held-back
		// one fold into one jump: held-back, jump, newest.
		if n < prevPending && n > 3 {
			t.Fatalf("cut %d: %d cuts pending after folding %d", i, n, prevPending)
		}
		prevPending = n
		size := fileSize(t, filepath.Join(h.state, checkpointName))
		if i < 2*maxPending {
			peakEarly = max(peakEarly, size)
		} else if size > 2*peakEarly {
			t.Fatalf("cut %d: checkpoint of %d bytes, at most %d over the first %d cuts", i, size, peakEarly, 2*maxPending)
		}
	}
	if h.stat("late") == 0 {
		t.Fatal("the test meant to produce late records")
	}
	if n := h.stat("pending_cuts"); n != 1 {
		t.Fatalf("pending_cuts = %d, want 1 (the held-back batch)", n)
	}
	if c := h.stat("last_commit_unix"); c != initialCommit {
		t.Fatalf("last_commit_unix moved to %d while the first batch was unconfirmed", c)
	}
	if c := h.stat("last_checkpoint_unix"); c != h.now.Unix() {
		t.Fatalf("last_checkpoint_unix = %d, want %d (the last cut's write)", c, h.now.Unix())
	}
	if n := r.log.Count(stuckMsg); n != 1 {
		t.Fatalf("stuck batch reported %d times in %s, want once", n, cuts*DefaultConfig().Interval)
	}
	return r
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestTailerStuckBatch: one batch whose Done never comes must neither grow
// the pending cuts and the checkpoint without bound nor cost correctness.
func TestTailerStuckBatch(t *testing.T) {
	t.Run("crash replays the journal byte-identically", func(t *testing.T) {
		r := runStuck(t)
		h := r.h
		_ = h.tl.Close() // crash: no Done, no shutdown
		h.batches = nil
		h.ackBatches = true
		h.start()
		h.poll()
		got := h.batches
		if len(got) == 0 || len(got) > h.tl.journal.maxPending {
			t.Fatalf("restart emitted %d batches, want the held-back one and at most %d more", len(got), h.tl.journal.maxPending-1)
		}
		if a, b := sortedLP(r.first.Points), sortedLP(got[0].Points); a != b {
			t.Fatalf("held-back batch emitted differently:\n--- before crash\n%s--- replay\n%s", a, b)
		}
		// After the jump, the cuts after it again, each as before.
		tail := r.emitted[len(r.emitted)-(len(got)-1):]
		for i := range tail {
			if a, b := sortedLP(tail[i].Points), sortedLP(got[i+1].Points); a != b {
				t.Fatalf("replayed batch %d differs:\n--- before crash\n%s--- replay\n%s", i+1, a, b)
			}
		}
		if n := h.stat("pending_cuts"); n != 0 {
			t.Fatalf("pending_cuts = %d after the replayed batches were confirmed", n)
		}
		h.now = h.now.Add(time.Hour)
		h.poll()
		checkTotals(t, tallyPoints(t, h.db.points()), r.written)
		h.stop()
		h.batches = nil
		h.start()
		h.poll()
		if len(h.batches) != 0 {
			t.Fatalf("%d batches re-emitted after all were confirmed", len(h.batches))
		}
	})
	t.Run("late Done commits everything", func(t *testing.T) {
		r := runStuck(t)
		h := r.h
		r.first.Done()
		if n := len(h.tl.journal.pending); n != 0 {
			t.Fatalf("%d cuts pending after the held-back Done", n)
		}
		if n := h.stat("pending_cuts"); n != 0 {
			t.Fatalf("pending_cuts = %d after the held-back Done", n)
		}
		if c := h.stat("last_commit_unix"); c != h.now.Unix() {
			t.Fatalf("last_commit_unix = %d after the held-back Done, want %d", c, h.now.Unix())
		}
		_ = h.tl.Close() // no shutdown checkpoint: the commit must suffice
		h.batches = nil
		h.ackBatches = true
		h.start()
		h.poll()
		for _, b := range h.batches {
			if len(b.Points) > 0 {
				t.Fatalf("restart re-emitted %d points", len(b.Points))
			}
		}
		h.now = h.now.Add(time.Hour)
		h.poll()
		checkTotals(t, tallyPoints(t, h.db.points()), r.written)
	})
}
