package stdout

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// recorder keeps every Write call separately, to check that a batch is one call.
type recorder struct {
	mu    sync.Mutex
	calls [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, bytes.Clone(p))
	return len(p), nil
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func goldenPoints() []agent.Point {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return []agent.Point{
		agent.NewPoint("pmta_queue",
			[]agent.Tag{
				{Key: "server", Value: "mta 1"},
				{Key: "domain", Value: "a,b.example"},
				{Key: "vmta", Value: "pool=gold"},
				{Key: "isp", Value: ""}, // absent: must not appear
			},
			[]agent.Field{
				{Key: "rcp", Value: int64(42)},
				{Key: "kb", Value: 12.5},
				{Key: "paused", Value: int64(0)},
			}, t0),
		agent.NewPoint("pmta_status",
			[]agent.Tag{{Key: "server", Value: "mx01"}},
			[]agent.Field{
				{Key: "up", Value: int64(1)},
				{Key: "uptime_s", Value: 3.0},
				{Key: "ready", Value: true},
				{Key: "version", Value: `v5.0r3 "beta" C:\pmta`},
			}, t0.Add(time.Second)),
		agent.NewPoint("pmta_acct_diag",
			[]agent.Tag{
				{Key: "server", Value: "mx01"},
				{Key: "diag", Value: "550 5.1.1 user unknown, mailbox=#"},
				{Key: "type", Value: "b"},
			},
			[]agent.Field{{Key: "count", Value: int64(7)}}, t0.Add(2*time.Second)),
		// No writable field: skipped, leaving no line behind.
		agent.NewPoint("pmta_vmta", []agent.Tag{{Key: "server", Value: "mx01"}}, nil, t0),
	}
}

func TestWriteGolden(t *testing.T) {
	var rec recorder
	s := New(&rec)
	if err := s.Write(context.Background(), goldenPoints()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(rec.calls) != 1 {
		t.Fatalf("got %d Write calls for one batch, want 1", len(rec.calls))
	}
	got := rec.calls[0]
	path := filepath.Join("testdata", "golden.lp")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestWriteNothingToWrite(t *testing.T) {
	var rec recorder
	s := New(&rec)
	noFields := []agent.Point{agent.NewPoint("m", nil, nil, time.Unix(1, 0))}
	for _, batch := range [][]agent.Point{nil, {}, noFields} {
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatalf("Write(%v): %v", batch, err)
		}
	}
	if len(rec.calls) != 0 {
		t.Errorf("got %d Write calls for batches without lines, want none: %q", len(rec.calls), rec.calls)
	}
}

func TestWriteErrorIsRetryable(t *testing.T) {
	cause := errors.New("broken pipe")
	s := New(failingWriter{err: cause})
	err := s.Write(context.Background(), goldenPoints())
	if err == nil {
		t.Fatal("Write succeeded on a failing writer")
	}
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Errorf("kind = %v, want retryable", kind)
	}
	if !errors.Is(err, cause) {
		t.Errorf("error %v does not wrap the writer's error", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	var rec recorder
	s := New(&rec)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, goldenPoints())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Errorf("kind = %v, want retryable", kind)
	}
	if len(rec.calls) != 0 {
		t.Errorf("cancelled Write still wrote %q", rec.calls)
	}
}

// TestWriteConcurrent checks that batches written from several goroutines
// arrive whole: every Write call on the writer is exactly one batch.
func TestWriteConcurrent(t *testing.T) {
	var rec recorder
	s := New(&rec)
	const writers, batches = 8, 50
	want := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var points []agent.Point
				for i := range 20 {
					points = append(points, agent.NewPoint("m",
						[]agent.Tag{{Key: "writer", Value: fmt.Sprint(w)}},
						[]agent.Field{{Key: "v", Value: int64(b*100 + i)}},
						time.Unix(int64(b), int64(i))))
				}
				mu.Lock()
				want[string(agent.LineProtocol(points))]++
				mu.Unlock()
				if err := s.Write(context.Background(), points); err != nil {
					t.Errorf("Write: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if len(rec.calls) != writers*batches {
		t.Fatalf("got %d Write calls, want %d", len(rec.calls), writers*batches)
	}
	for _, c := range rec.calls {
		if want[string(c)] == 0 {
			t.Fatalf("Write call is not one whole batch:\n%s", c)
		}
		want[string(c)]--
	}
}

func TestBufferNotRetainedWhenHuge(t *testing.T) {
	s := New(&recorder{})
	long := string(bytes.Repeat([]byte("x"), 4096))
	var points []agent.Point
	for i := range 400 { // about 1.6 MB of line protocol
		points = append(points, agent.NewPoint("m", nil,
			[]agent.Field{{Key: "s", Value: long}}, time.Unix(int64(i), 0)))
	}
	if err := s.Write(context.Background(), points); err != nil {
		t.Fatal(err)
	}
	if cap(s.buf) > maxKeptBuffer {
		t.Errorf("kept a %d-byte buffer after a huge batch, limit %d", cap(s.buf), maxKeptBuffer)
	}
	if err := s.Write(context.Background(), points[:1]); err != nil {
		t.Fatal(err)
	}
	if cap(s.buf) == 0 {
		t.Error("small batch buffer was not kept for reuse")
	}
}

func TestConfig(t *testing.T) {
	if c := DefaultConfig(); c.Enabled || len(c.Validate()) != 0 {
		t.Errorf("DefaultConfig() = %+v, problems %v; want off and valid", c, c.Validate())
	}
}
