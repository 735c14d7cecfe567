package acct

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// TestBackfillMergesFiles gives an acct and a diag file of the same hour,
// diag first: read side by side in time order, no record is late and every
// one is counted once.
func TestBackfillMergesFiles(t *testing.T) {
	dir := t.TempDir()
	acct, recsA := genFile(1, 3000, testStart, time.Second, true)
	diag, recsD := genFile(2, 2000, testStart.Add(500*time.Millisecond), 1500*time.Millisecond, false)
	pa, pd := filepath.Join(dir, "acct-1.csv"), filepath.Join(dir, "diag-1.csv")
	if err := os.WriteFile(pa, acct, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pd, diag, 0o644); err != nil {
		t.Fatal(err)
	}
	var pts []agent.Point
	var progressCalls int
	st, err := Backfill(context.Background(), []string{pd, pa}, BackfillOptions{Logger: discardLogger()}, agent.NewISPMap(nil),
		func(b agent.Batch) {
			pts = append(pts, b.Points...)
			if b.Done != nil {
				t.Error("backfill batches carry no Done")
			}
		},
		func(BackfillStats) { progressCalls++ })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Records != 5000 || st.Malformed != 0 || st.Points != int64(len(pts)) {
		t.Fatalf("stats %+v, %d points", st, len(pts))
	}
	if progressCalls == 0 {
		t.Fatal("progress never called")
	}
	checkTotals(t, tallyPoints(t, pts), append(recsA, recsD...))
	// Every point sits in its own record's interval: nothing was late.
	seen := map[string]bool{}
	for _, p := range pts {
		k := pointKey(&p)
		if seen[k] {
			t.Fatalf("point emitted twice: %s", k)
		}
		seen[k] = true
	}
}

func TestBackfillErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	data, recs := genFile(1, 10, testStart, time.Second, true)
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var pts []agent.Point
	st, err := Backfill(context.Background(), []string{filepath.Join(dir, "missing.csv"), good}, BackfillOptions{},
		agent.NewISPMap(nil), func(b agent.Batch) { pts = append(pts, b.Points...) }, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
	if st.Records != 10 {
		t.Fatalf("the readable file was not read: %+v", st)
	}
	checkTotals(t, tallyPoints(t, pts), recs)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Backfill(ctx, []string{good}, BackfillOptions{}, agent.NewISPMap(nil), func(agent.Batch) {}, nil); err == nil {
		t.Fatal("a cancelled backfill returned no error")
	}
}

// A backfill's interval need only be whole seconds: it lines up with no
// other server, so 7s is as good as 1m. Sub-second intervals and a
// negative lag are refused with the setting named.
func TestBackfillIntervals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "acct.csv")
	data, recs := genFile(1, 500, testStart, time.Second, true)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var pts []agent.Point
	opts := BackfillOptions{Config: Config{Interval: 7 * time.Second}}
	st, err := Backfill(context.Background(), []string{path}, opts, agent.NewISPMap(nil),
		func(b agent.Batch) { pts = append(pts, b.Points...) }, nil)
	if err != nil || st.Records != 500 {
		t.Fatalf("7s backfill: %v, %+v", err, st)
	}
	checkTotals(t, tallyPoints(t, pts), recs)
	for _, p := range pts {
		if p.Time.Unix()%7 != 0 {
			t.Fatalf("point at %s is not on a 7s boundary", p.Time)
		}
	}
	for _, bad := range []struct {
		opts BackfillOptions
		want string
	}{
		{BackfillOptions{Config: Config{Interval: 1500 * time.Millisecond}}, "interval: (1.5s) must be a whole number of seconds"},
		{BackfillOptions{Lag: -time.Second}, "lag: (-1s) must be 0"},
		{BackfillOptions{Config: Config{MaxLineBytes: 100}}, "max_line_bytes: must be at least 1024"},
	} {
		_, err := Backfill(context.Background(), []string{path}, bad.opts, agent.NewISPMap(nil), func(agent.Batch) {}, nil)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err = %v, want %q", bad.opts, err, bad.want)
		}
	}
}

// TestBackfillMemory writes a 1,000,000-record file and backfills it while
// watching the heap. It takes a while and ~450 MB of disk, so it runs only
// with ACCT_BIG=1; the peak RSS it logs is the figure in the report.
func TestBackfillMemory(t *testing.T) {
	if os.Getenv("ACCT_BIG") == "" {
		t.Skip("set ACCT_BIG=1 to backfill a generated 1,000,000-record file")
	}
	path := filepath.Join(t.TempDir(), "acct-big.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(7, 7))
	w.WriteString(header23 + "\r\n")
	const n = 1_000_000
	for i := range n {
		w.WriteString(genLine(r, i, testStart.Add(time.Duration(i)*5*time.Millisecond), true).line)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var peakHeap uint64
	var ms runtime.MemStats
	var total int64
	st, err := Backfill(context.Background(), []string{path}, BackfillOptions{}, agent.NewISPMap(nil),
		func(b agent.Batch) {
			total += sumCount(t, b.Points)
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapAlloc)
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != n || total != n {
		t.Fatalf("records %d, counted %d, want %d", st.Records, total, n)
	}
	status, _ := os.ReadFile("/proc/self/status")
	var hwm string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm = strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	t.Logf("1,000,000 records in %s (%.0f records/s), %d points; peak heap at emit %d MiB, process peak RSS %s",
		st.Elapsed, float64(n)/st.Elapsed.Seconds(), st.Points, peakHeap>>20, hwm)
	if peakHeap > 64<<20 {
		t.Fatalf("peak heap %d MiB", peakHeap>>20)
	}
}
