package acct

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// TestTailerCrashReplay emits batches whose Done is never called, drops the
// tailer as a crash would, and starts a new one: it must emit the very same
// points again, and after the replays overwrite (last write wins, as in
// InfluxDB) every record is counted exactly once.
func TestTailerCrashReplay(t *testing.T) {
	h := newHarness(t)
	h.ackBatches = false
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	var written []genRecord
	add := func(seed uint64, n int, at time.Time, withHeader bool) {
		data, recs := records(seed, n, at)
		if withHeader {
			data = append([]byte(header23+"\r\n"), data...)
		}
		appendFile(t, f0, data)
		written = append(written, recs...)
	}
	h.now = testStart.Add(15 * time.Second)
	h.start()
	add(1, 40, testStart, true) // 40 s of records, over five intervals
	h.poll()
	// Late records for intervals already closed, then more current ones.
	add(2, 5, testStart, false)
	h.now = testStart.Add(45 * time.Second)
	h.poll()
	add(3, 30, testStart.Add(40*time.Second), false)
	h.now = testStart.Add(62 * time.Second)
	h.poll()
	if h.stat("late") == 0 {
		t.Fatal("the test meant to produce late records")
	}
	first := h.batches
	if len(first) < 2 {
		t.Fatalf("only %d batches before the crash", len(first))
	}
	// Crash: no Done, no shutdown, the process is gone.
	_ = h.tl.Close()

	h.batches = nil
	h.ackBatches = true
	h.start()
	h.poll()
	if len(h.batches) < len(first) {
		t.Fatalf("replay emitted %d batches, want at least %d", len(h.batches), len(first))
	}
	for i := range first {
		if a, b := sortedLP(first[i].Points), sortedLP(h.batches[i].Points); a != b {
			t.Fatalf("replayed batch %d differs:\n--- before crash\n%s--- replay\n%s", i, a, b)
		}
	}
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), written)

	// A third start after everything was confirmed replays nothing.
	h.stop()
	h.batches = nil
	h.start()
	h.poll()
	if len(h.batches) != 0 {
		t.Fatalf("%d batches re-emitted after all were confirmed", len(h.batches))
	}
}

// TestTailerDoneOrder commits a checkpoint only once every earlier batch is
// done: confirming batch 2 before batch 1 must not let a restart skip 1.
func TestTailerDoneOrder(t *testing.T) {
	h := newHarness(t)
	h.ackBatches = false
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 30, testStart)
	appendFile(t, f0, append([]byte(header23+"\r\n"), data...))
	h.now = testStart.Add(12 * time.Second)
	h.start()
	h.poll()
	h.now = testStart.Add(32 * time.Second)
	h.poll()
	if len(h.batches) != 2 {
		t.Fatalf("%d batches, want 2", len(h.batches))
	}
	h.batches[1].Done()
	_ = h.tl.Close()
	h.batches = nil
	h.start()
	h.poll()
	if len(h.batches) != 2 {
		t.Fatalf("restart re-emitted %d batches, want both", len(h.batches))
	}
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
}

// TestTailerFingerprintMatch restarts after a file was copied to the other
// watched directory (a new inode, so only the content tells it is the same
// file) and grew, once while shorter than the fingerprint size.
func TestTailerFingerprintMatch(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, written := records(1, 1, testStart)
	appendFile(t, f0, append([]byte(header23+"\r\n"), data...))
	if fi, _ := os.Stat(f0); fi.Size() >= int64(DefaultConfig().FingerprintSize) {
		t.Fatalf("fixture of %d bytes is not shorter than the fingerprint", fi.Size())
	}
	h.start()
	h.poll()
	for round, seed := range []uint64{2, 3} {
		h.stop()
		raw, err := os.ReadFile(f0)
		if err != nil {
			t.Fatal(err)
		}
		next := filepath.Join(h.dirB, filepath.Base(f0))
		if round == 1 {
			next = filepath.Join(h.dirA, filepath.Base(f0))
		}
		if err := os.Remove(f0); err != nil {
			t.Fatal(err)
		}
		more, recs := records(seed, 10, testStart.Add(time.Duration(round+1)*20*time.Second))
		if err := os.WriteFile(next, append(raw, more...), 0o644); err != nil {
			t.Fatal(err)
		}
		written = append(written, recs...)
		f0 = next
		h.start()
		h.poll()
	}
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), written)
}

func TestTailerCorruptCheckpoint(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.state, checkpointName), []byte(`{"version":1,"snap`), 0o644); err != nil {
		t.Fatal(err)
	}
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 20, testStart)
	appendFile(t, f0, append([]byte(header23+"\r\n"), data...))
	h.start()
	if got := h.stat("checkpoint_corrupt"); got != 1 {
		t.Fatalf("checkpoint_corrupt=%d", got)
	}
	entries, _ := os.ReadDir(h.state)
	moved := false
	for _, e := range entries {
		moved = moved || strings.HasPrefix(e.Name(), checkpointName+".corrupt-")
	}
	if !moved {
		t.Fatalf("corrupt checkpoint not moved aside: %v", entries)
	}
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	if h.stat("last_checkpoint_unix") == 0 {
		t.Fatal("no checkpoint written after starting afresh")
	}
}

// TestTailerStartAtEnd skips what the files hold at the very first start but
// keeps their columns, and reads what is appended after.
func TestTailerStartAtEnd(t *testing.T) {
	h := newHarness(t)
	h.startAt = "end"
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	old, _ := records(1, 20, testStart)
	// A partial last line at start: its rest arrives later and is part of
	// a record that started before the tailer did, so it is skipped too.
	appendFile(t, f0, append([]byte(header23+"\r\n"), old...))
	h.start()
	h.poll()
	if got := h.stat("records"); got != 0 {
		t.Fatalf("records=%d from before the first start", got)
	}
	data, recs := records(2, 15, testStart.Add(time.Minute))
	appendFile(t, f0, data)
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	// A later restart is no first start: a new file is read from its start.
	h.stop()
	f1 := filepath.Join(h.dirA, "acct-2024-01-15-0001.csv")
	data, more := records(3, 5, testStart.Add(2*time.Minute))
	appendFile(t, f1, append([]byte(header23+"\r\n"), data...))
	h.start()
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), append(recs, more...))
}

// TestTailerMalformedNeverStalls feeds garbage between good records; the bad
// lines are counted and the good ones after them still arrive.
func TestTailerMalformedNeverStalls(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 10, testStart)
	more, recs2 := records(2, 10, testStart.Add(20*time.Second))
	junk := "x,not a type\r\nd,when?,,,,,,,,,,,,,,,,,,,,,\r\nd,\"" + strings.Repeat("never closed\r\n", 100) +
		strings.Repeat("y", 2<<20) + "\r\n"
	appendFile(t, f0, []byte(header23+"\r\n"+string(data)+junk+string(more)))
	h.start()
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), append(recs, recs2...))
	if got := h.stat("malformed"); got < 3 {
		t.Fatalf("malformed=%d, want at least 3", got)
	}
}

// TestTailerRun runs the real loop until the context ends.
func TestTailerRun(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	data, recs := records(1, 50, testStart)
	if err := os.WriteFile(filepath.Join(dir, "acct-x.csv"), append([]byte(header23+"\r\n"), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	tl, err := NewTailer(Config{Globs: []string{filepath.Join(dir, "*.csv")}, StateDir: state, StartAt: "beginning",
		PollEvery: 10 * time.Millisecond}, agent.NewISPMap(nil), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []agent.Point, 100)
	done := make(chan error)
	go func() {
		done <- tl.Run(ctx, func(b agent.Batch) {
			got <- b.Points
			if b.Done != nil {
				b.Done()
			}
		})
	}()
	db := store{}
	deadline := time.After(10 * time.Second)
	for sumCount(t, db.points()) < int64(len(recs)) {
		select {
		case pts := <-got:
			db.write(pts)
		case <-deadline:
			t.Fatalf("counted %d of %d records", sumCount(t, db.points()), len(recs))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTotals(t, tallyPoints(t, db.points()), recs)
}

// TestTailerManyPendingCuts holds back Done for more cuts than snapshots are
// kept for, then confirms them in order: the checkpoint catches up and a
// restart re-emits nothing.
func TestTailerManyPendingCuts(t *testing.T) {
	h := newHarness(t)
	h.ackBatches = false
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	appendFile(t, f0, []byte(header23+"\r\n"))
	h.now = testStart
	h.start()
	h.poll()
	var written []genRecord
	for i := range 2 * maxPendingSnaps {
		data, recs := records(uint64(i), 10, h.now)
		appendFile(t, f0, data)
		written = append(written, recs...)
		h.now = h.now.Add(DefaultConfig().Interval)
		h.poll()
	}
	if len(h.tl.journal.pending) <= maxPendingSnaps {
		t.Fatalf("only %d cuts pending", len(h.tl.journal.pending))
	}
	for _, b := range h.batches {
		b.Done()
	}
	if n := len(h.tl.journal.pending); n != 0 {
		t.Fatalf("%d cuts still pending after every Done", n)
	}
	h.now = h.now.Add(time.Hour)
	h.ackBatches = true
	h.poll()
	_ = h.tl.Close() // no shutdown checkpoint: the Done commits must suffice
	h.batches = nil
	h.start()
	h.poll()
	for _, b := range h.batches {
		if len(b.Points) > 0 {
			t.Fatalf("restart re-emitted %d points", len(b.Points))
		}
	}
	checkTotals(t, tallyPoints(t, h.db.points()), written)
}
