package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// crashPoints is what the child appends as its i-th entry; the first point
// carries i, and the parent rebuilds the entry from it to check what
// survived, point for point.
func crashPoints(i uint64) []agent.Point {
	p := makePoints(i, 1+int(i*7919%3000), t0.Add(time.Duration(i)*time.Second))
	p[0].Fields = append(p[0].Fields, agent.Field{Key: "entry", Value: int64(i)})
	return p
}

func entryNo(points []agent.Point) (uint64, bool) {
	if len(points) == 0 {
		return 0, false
	}
	v, ok := points[0].FieldValue("entry")
	n, isInt := v.(int64)
	return uint64(n), ok && isInt
}

// TestHelperProcess is the child of TestCrashKill, not a test: it appends
// in a loop (acknowledging the oldest entry now and then) until it is
// killed, printing what happened to stdout, one write per line, so that
// every printed line happened before the kill.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("QUEUE_CRASH_CHILD") != "1" {
		t.Skip("run by TestCrashKill")
	}
	dir := os.Getenv("QUEUE_CRASH_DIR")
	start, _ := strconv.ParseUint(os.Getenv("QUEUE_CRASH_START"), 10, 64)
	seed, _ := strconv.ParseUint(os.Getenv("QUEUE_CRASH_SEED"), 10, 64)
	r := rand.New(rand.NewPCG(seed, start))
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
	}
	q, err := Open(Options{Dir: dir, MaxBytes: 256 << 20, SegmentBytes: 1 << 20,
		SyncEvery: 5 * time.Millisecond, Log: testLog()})
	if err != nil {
		say("error open: %v", err)
		return
	}
	// A bound on the child's life in case the parent never kills it.
	deadline := time.Now().Add(20 * time.Second)
	for i := start; time.Now().Before(deadline); i++ {
		if err := q.Append(crashPoints(i), func() { say("durable %d", i) }); err != nil {
			say("error append: %v", err)
			return
		}
		e, _ := q.Newest()
		say("appended %d %d", i, e.Seq)
		if r.IntN(3) == 0 {
			if o, ok := q.Oldest(); ok {
				n, _ := entryNo(o.Points)
				say("ack %d", n)
				q.Ack(o.Seq)
			}
		}
	}
}

// TestCrashKill kills an appending child with SIGKILL at random moments and
// checks after each kill that the queue opens, keeps every entry whose
// durable callback fired (indeed every entry whose Append returned: a killed
// process loses nothing the OS has) unless it was acknowledged, holds nothing
// else but possibly the one entry being written, quarantines nothing, and
// never numbers an entry below an earlier one.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QUEUE_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set QUEUE_CRASH_SEED to repeat)", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	acked := map[uint64]bool{}
	var maxSeq uint64
	totalDurable := 0
	const rounds = 6
	for round := range rounds {
		start := uint64(round+1) * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "QUEUE_CRASH_CHILD=1", "QUEUE_CRASH_DIR="+dir,
			fmt.Sprintf("QUEUE_CRASH_START=%d", start), fmt.Sprintf("QUEUE_CRASH_SEED=%d", seed))
		var out syncBuffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill once the child has been appending for a random while.
		wait := time.Duration(50+r.IntN(400)) * time.Millisecond
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "appended") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(wait)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		appended := map[uint64]uint64{} // entry -> seq
		durable := map[uint64]bool{}
		var roundMin uint64
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 0:
			case f[0] == "error":
				t.Fatalf("round %d: child: %s", round, sc.Text())
			case f[0] == "appended" && len(f) == 3:
				i, _ := strconv.ParseUint(f[1], 10, 64)
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				appended[i] = seq
				if roundMin == 0 || seq < roundMin {
					roundMin = seq
				}
			case f[0] == "durable" && len(f) == 2:
				i, _ := strconv.ParseUint(f[1], 10, 64)
				durable[i] = true
			case f[0] == "ack" && len(f) == 2:
				i, _ := strconv.ParseUint(f[1], 10, 64)
				acked[i] = true
			}
		}
		if len(appended) == 0 {
			t.Fatalf("round %d: the child appended nothing:\n%s", round, out.String())
		}
		if roundMin <= maxSeq {
			t.Fatalf("round %d: seq %d given after seq %d", round, roundMin, maxSeq)
		}
		totalDurable += len(durable)

		q := openQ(t, Options{Dir: dir, MaxBytes: 256 << 20, SegmentBytes: 1 << 20})
		present := map[uint64]bool{}
		var stray []uint64
		var prev uint64
		for {
			e, ok := q.After(prev)
			if !ok {
				break
			}
			prev = e.Seq
			i, ok := entryNo(e.Points)
			if !ok {
				t.Fatalf("round %d: seq %d has no entry number", round, e.Seq)
			}
			if d := diffPoints(e.Points, crashPoints(i)); d != "" {
				t.Fatalf("round %d: entry %d: %s", round, i, d)
			}
			present[i] = true
			if _, ok := appended[i]; !ok && i >= start {
				stray = append(stray, i) // written, but killed before it was printed
			}
			maxSeq = max(maxSeq, e.Seq)
		}
		for i := range durable {
			if !present[i] && !acked[i] {
				t.Fatalf("round %d: entry %d was confirmed durable and is gone", round, i)
			}
		}
		for i, seq := range appended {
			if !present[i] && !acked[i] {
				t.Fatalf("round %d: entry %d (seq %d) was appended and is gone", round, i, seq)
			}
			maxSeq = max(maxSeq, seq)
		}
		if len(stray) > 1 {
			t.Fatalf("round %d: entries %v present but never reported appended", round, stray)
		}
		if n := stat(q, "quarantined_files"); n != 0 {
			t.Fatalf("round %d: a kill led to %d quarantined files", round, n)
		}
		t.Logf("round %d: killed after %v; %d appended, %d durable, %d present", round, wait, len(appended), len(durable), len(present))
		q.Close()
	}
	if totalDurable == 0 {
		t.Fatal("no durable callback fired in any round: the test checked nothing")
	}
}

// syncBuffer is a bytes.Buffer that the exec copier writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
