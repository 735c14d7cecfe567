package queue

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fillAndDrain appends 5,000-point entries until the queue holds about
// backlog bytes, reopens it (the recovery scan reads every byte), then reads
// and acknowledges everything. It returns the entries drained and how long
// the reopen took.
func fillAndDrain(t testing.TB, dir string, backlog int64) (int, time.Duration) {
	batch := makePoints(1, 5000, t0)
	o := Options{Dir: dir, MaxBytes: backlog + backlog/8}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	for stat(q, "bytes") < backlog {
		if err := q.Append(batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	start := time.Now()
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	reopen := time.Since(start)
	defer q.Close()
	n := 0
	for {
		e, ok := q.Oldest()
		if !ok {
			break
		}
		if len(e.Points) != len(batch) {
			t.Fatalf("entry %d has %d points", e.Seq, len(e.Points))
		}
		q.Ack(e.Seq)
		n++
	}
	return n, reopen
}

// The heap must not grow with the backlog: with 64 MiB queued it holds the
// index and a couple of entries, nothing like the backlog.
func TestMemoryBounded(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, Options{Dir: dir, MaxBytes: 80 << 20})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// Distinct batches, so that a queue keeping what it was handed would
	// show in the heap.
	for i := uint64(0); stat(q, "bytes") < 64<<20; i++ {
		mustAppend(t, q, makePoints(i, 5000, t0))
	}
	for range 3 {
		e, _ := q.Oldest()
		q.Ack(e.Seq)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Fatalf("heap grew by %d MiB with a 64 MiB backlog", grew>>20)
	}
}

// BenchmarkBacklog1GiB measures the peak RSS (the kernel's VmHWM, read in a
// child process so that nothing else the test binary did counts) of filling
// a queue with 1 GiB of 5,000-point entries, reopening it, and draining it.
// It fails above 100 MiB. Run alone: go test -run XXX -bench Backlog1GiB -benchtime 1x.
func BenchmarkBacklog1GiB(b *testing.B) {
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$")
		cmd.Env = append(os.Environ(), "QUEUE_RSS_CHILD="+b.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		var hwm, entries, reopenMS int64
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[0] == "rss" {
				hwm, _ = strconv.ParseInt(f[1], 10, 64)
				entries, _ = strconv.ParseInt(f[2], 10, 64)
				reopenMS, _ = strconv.ParseInt(f[3], 10, 64)
			}
		}
		if hwm == 0 {
			b.Fatalf("child reported nothing:\n%s", out)
		}
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
		b.ReportMetric(float64(entries), "entries")
		b.ReportMetric(float64(reopenMS), "reopen-ms")
		if hwm > 100<<10 {
			b.Fatalf("peak RSS %d MiB with a 1 GiB backlog", hwm>>10)
		}
	}
}

// TestRSSChild is the child of BenchmarkBacklog1GiB, not a test.
func TestRSSChild(t *testing.T) {
	dir := os.Getenv("QUEUE_RSS_CHILD")
	if dir == "" {
		t.Skip("run by BenchmarkBacklog1GiB")
	}
	n, reopen := fillAndDrain(t, dir, 1<<30)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("rss %s %d %d\n", strings.TrimSuffix(strings.TrimSpace(kb), " kB"), n, reopen.Milliseconds())
		}
	}
}
