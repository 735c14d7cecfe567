package acct

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// store keeps the last value per (measurement, tags, time), as InfluxDB does
// when a point is written again.
type store map[string]agent.Point

func (s store) write(pts []agent.Point) {
	for _, p := range pts {
		s[pointKey(&p)] = p
	}
}

func (s store) points() []agent.Point {
	out := make([]agent.Point, 0, len(s))
	for _, p := range s {
		out = append(out, p)
	}
	return out
}

// harness drives a Tailer over real files in two watched directories with
// a settable clock.
type harness struct {
	t          *testing.T
	dirA, dirB string
	state      string
	now        time.Time
	tl         *Tailer
	ackBatches bool
	batches    []agent.Batch
	db         store
	startAt    string
	log        *slog.Logger // nil: discard
	diag       bool         // follow dirA/diag-*.csv too
	interval   time.Duration
	maxAge     time.Duration
	verdict    verdict.Config // zero: off
	window     *verdict.Window
}

func newHarness(t *testing.T) *harness {
	base := t.TempDir()
	h := &harness{t: t, dirA: filepath.Join(base, "pmta"), dirB: filepath.Join(base, "moved"),
		state: filepath.Join(base, "state"), now: testStart.Add(time.Hour), ackBatches: true, db: store{}, startAt: "beginning"}
	for _, d := range []string{h.dirA, h.dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) start() {
	h.t.Helper()
	globs := []string{filepath.Join(h.dirA, "acct-*.csv"), filepath.Join(h.dirB, "acct-*.csv")}
	if h.diag {
		globs = append(globs, filepath.Join(h.dirA, "diag-*.csv"))
	}
	tl, err := NewTailer(Config{
		Globs:    globs,
		StateDir: h.state, StartAt: h.startAt, Interval: h.interval, MaxAge: h.maxAge,
		Verdict: h.verdict, VerdictWindow: h.window,
	}, agent.NewISPMap(nil), cmp.Or(h.log, discardLogger()))
	if err != nil {
		h.t.Fatal(err)
	}
	tl.now = func() time.Time { return h.now }
	tl.SetEmit(func(b agent.Batch) {
		h.batches = append(h.batches, b)
		h.db.write(b.Points)
		if h.ackBatches && b.Done != nil {
			b.Done()
		}
	})
	h.tl = tl
	h.t.Cleanup(func() { _ = tl.Close() })
}

func (h *harness) poll() {
	h.t.Helper()
	if err := h.tl.PollOnce(context.Background()); err != nil {
		h.t.Fatalf("PollOnce: %v", err)
	}
}

// stop ends the tailer as Run does on cancellation, then closes it as the
// engine does, which releases the state directory's lock for the next start.
func (h *harness) stop() {
	h.tl.shutdown()
	_ = h.tl.Close()
}

func (h *harness) stat(key string) int64 {
	for _, f := range h.tl.Stats() {
		if f.Key == key {
			if v, ok := f.Value.(int64); ok {
				return v
			}
		}
	}
	h.t.Fatalf("no int64 stat %q", key)
	return 0
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// records makes n records logged from at on, one a second, without header.
func records(seed uint64, n int, at time.Time) ([]byte, []genRecord) {
	data, recs := genFile(seed, n, at, time.Second, true)
	return data[len(header23)+2:], recs
}

func checkTotals(t *testing.T, got map[tallyKey]int64, want []genRecord) {
	t.Helper()
	w := tallyRecords(want)
	for k, n := range w {
		if got[k] != n {
			t.Errorf("%v: counted %d, written %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := w[k]; !ok {
			t.Errorf("%v: counted %d, never written", k, n)
		}
	}
}

// TestTailerRotation follows files through PowerMTA's rotations — new -NNNN
// files, a move into a second watched directory, deletion of drained files,
// a truncation, a rotation while the tailer is stopped — with restarts in
// between, and checks that every record is counted exactly once.
func TestTailerRotation(t *testing.T) {
	h := newHarness(t)
	var written []genRecord
	add := func(path string, seed uint64, n int, at time.Time, withHeader bool) {
		data, recs := records(seed, n, at)
		if withHeader {
			data = append([]byte(header23+"\r\n"), data...)
		}
		appendFile(t, path, data)
		written = append(written, recs...)
	}
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	f1 := filepath.Join(h.dirA, "acct-2024-01-15-0001.csv")
	f2 := filepath.Join(h.dirA, "acct-2024-01-15-0002.csv")
	f3 := filepath.Join(h.dirA, "acct-2024-01-16-0000.csv")

	h.start()
	add(f0, 1, 100, testStart, true)
	h.poll()
	if got := h.stat("records"); got != 100 {
		t.Fatalf("records after first poll: %d", got)
	}

	t.Run("partial last line counted once, after its second half", func(t *testing.T) {
		data, recs := records(2, 1, testStart.Add(200*time.Second))
		half := len(data) / 2
		appendFile(t, f0, data[:half])
		h.poll()
		if got := h.stat("records"); got != 100 {
			t.Fatalf("half a line was counted: records=%d", got)
		}
		appendFile(t, f0, data[half:])
		h.poll()
		if got := h.stat("records"); got != 101 {
			t.Fatalf("records=%d after the second half, want 101", got)
		}
		written = append(written, recs...)
	})

	// Rotation to a new -NNNN file; the old one still gets its last records.
	add(f1, 3, 80, testStart.Add(300*time.Second), true)
	add(f0, 4, 10, testStart.Add(290*time.Second), false)
	h.poll()

	// move-to: the finished file moves to the second watched directory.
	moved0 := filepath.Join(h.dirB, filepath.Base(f0))
	if err := os.Rename(f0, moved0); err != nil {
		t.Fatal(err)
	}
	h.poll()
	if got := h.stat("records"); got != 191 {
		t.Fatalf("records=%d after the move, want 191 (a moved file must keep its offset)", got)
	}

	// Restart.
	h.stop()
	h.start()
	add(f1, 5, 20, testStart.Add(400*time.Second), false)
	h.poll()

	// Records appended and the file deleted before the next poll: the open
	// descriptor still drains them.
	add(f1, 6, 7, testStart.Add(420*time.Second), false)
	if err := os.Remove(f1); err != nil {
		t.Fatal(err)
	}
	h.poll()
	if got := h.stat("files_done"); got != 1 {
		t.Fatalf("files_done=%d after deleting a file, want 1", got)
	}

	// Rotation while the tailer is stopped: the moved file is deleted, a new
	// file appears and is moved, another is written in place.
	h.stop()
	add(f2, 7, 30, testStart.Add(500*time.Second), true)
	if err := os.Remove(moved0); err != nil {
		t.Fatal(err)
	}
	moved2 := filepath.Join(h.dirB, filepath.Base(f2))
	if err := os.Rename(f2, moved2); err != nil {
		t.Fatal(err)
	}
	add(f3, 8, 25, testStart.Add(600*time.Second), true)
	h.start()
	h.poll()

	// Truncation: the file is emptied and written again from the start.
	h.poll()
	data, recs := records(9, 12, testStart.Add(700*time.Second))
	if err := os.WriteFile(f3, append([]byte(header23+"\r\n"), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	written = append(written, recs...)
	h.poll()
	if got := h.stat("truncations"); got != 1 {
		t.Fatalf("truncations=%d, want 1", got)
	}

	h.now = h.now.Add(24 * time.Hour)
	h.poll()
	h.stop()
	got := tallyPoints(t, h.db.points())
	checkTotals(t, got, written)
	if total := sumCount(t, h.db.points()); total != int64(len(written)) {
		t.Fatalf("counted %d records, wrote %d", total, len(written))
	}
}

// TestTailerLocksStateDir: the tailer makes its state directory private and
// locks it, so that a second agent on the same state fails to start; Close
// lets the next one in.
func TestTailerLocksStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acct")
	cfg := Config{Globs: []string{filepath.Join(t.TempDir(), "*.csv")}, StateDir: dir}
	first, err := NewTailer(cfg, agent.NewISPMap(nil), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	_, err = NewTailer(cfg, agent.NewISPMap(nil), discardLogger())
	want := fmt.Sprintf("accounting state directory %s is locked by another process (pid %d)", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second tailer: %v, want %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	next, err := NewTailer(cfg, agent.NewISPMap(nil), discardLogger())
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	_ = next.Close()
}
