package engine

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/queue"

	"github.com/pmta-agent/pmta-agent/agent"
)

// fakeSink is a hand-written fake: its behaviour is a function field.
type fakeSink struct {
	mu    sync.Mutex
	write func(n int, points []agent.Point) error // n counts calls from 0
	calls int
	got   []agent.Point
}

func (f *fakeSink) Name() string { return "fake" }

func (f *fakeSink) Write(_ context.Context, points []agent.Point) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.calls
	f.calls++
	if f.write != nil {
		if err := f.write(n, points); err != nil {
			return err
		}
	}
	f.got = append(f.got, points...)
	return nil
}

func pts(n int) []agent.Point {
	out := make([]agent.Point, n)
	for i := range out {
		out[i] = agent.NewPoint("m", nil, []agent.Field{{Key: "i", Value: int64(i)}}, time.Unix(int64(i), 0))
	}
	return out
}

func values(p []agent.Point) []int64 {
	var out []int64
	for _, x := range p {
		v, _ := x.FieldValue("i")
		out = append(out, v.(int64))
	}
	return out
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestDeliveryOutcomes(t *testing.T) {
	ctx := context.Background()
	t.Run("retryable keeps order and data", func(t *testing.T) {
		s := &fakeSink{write: func(n int, _ []agent.Point) error {
			if n < 2 {
				return errors.New("connection refused")
			}
			return nil
		}}
		d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 3, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}, discard())
		d.Enqueue(pts(7), nil)
		for range 10 {
			if _, more := d.FlushOnce(ctx); !more {
				break
			}
		}
		if !slices.Equal(values(s.got), []int64{0, 1, 2, 3, 4, 5, 6}) {
			t.Fatalf("got %v", values(s.got))
		}
	})
	t.Run("throttled honours Retry-After", func(t *testing.T) {
		s := &fakeSink{write: func(n int, _ []agent.Point) error {
			if n == 0 {
				return &agent.SinkError{Kind: agent.Throttled, RetryAfter: 7 * time.Second, Err: errors.New("429")}
			}
			return nil
		}}
		d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{MinBackoff: time.Millisecond}, discard())
		d.Enqueue(pts(2), nil)
		wait, more := d.FlushOnce(ctx)
		if wait != 7*time.Second || !more {
			t.Fatalf("wait %s more %v, want 7s true", wait, more)
		}
	})
	t.Run("permanent for every point drops and counts", func(t *testing.T) {
		s := &fakeSink{write: func(n int, p []agent.Point) error {
			if values(p)[0] < 2 {
				return &agent.SinkError{Kind: agent.Permanent, Err: errors.New("400 bad request")}
			}
			return nil
		}}
		d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 2}, discard())
		d.Enqueue(pts(4), nil)
		for range 10 {
			d.FlushOnce(ctx)
		}
		if !slices.Equal(values(s.got), []int64{2, 3}) || d.Counts().Refused != 2 {
			t.Fatalf("got %v dropped %d", values(s.got), d.Counts().Refused)
		}
	})
	t.Run("too large splits until it fits", func(t *testing.T) {
		s := &fakeSink{write: func(_ int, p []agent.Point) error {
			if len(p) > 2 {
				return &agent.SinkError{Kind: agent.TooLarge, Err: errors.New("413")}
			}
			return nil
		}}
		d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 8}, discard())
		d.Enqueue(pts(7), nil)
		for range 20 {
			if _, more := d.FlushOnce(ctx); !more {
				break
			}
		}
		if !slices.Equal(values(s.got), []int64{0, 1, 2, 3, 4, 5, 6}) || d.Queued() != 0 {
			t.Fatalf("got %v queued %d", values(s.got), d.Queued())
		}
	})
	t.Run("overflow drops the oldest", func(t *testing.T) {
		s := &fakeSink{}
		st := queue.NewMemory(4)
		d := NewDelivery(s, st, DeliveryConfig{BatchSize: 2}, discard())
		d.Enqueue(pts(8), nil)
		for range 5 {
			d.FlushOnce(ctx)
		}
		if !slices.Equal(values(s.got), []int64{4, 5, 6, 7}) || st.Stats()[0].Value != int64(4) {
			t.Fatalf("got %v dropped %d", values(s.got), st.Stats()[0].Value)
		}
		if f := st.Stats(); f[2].Value != int64(0) || f[3].Value != int64(3) {
			t.Errorf("dropped time range %v, want 0..3", f)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	d := NewDelivery(&fakeSink{}, queue.NewMemory(1), DeliveryConfig{MinBackoff: time.Second, MaxBackoff: time.Minute}, discard())
	for n := 1; n < 20; n++ {
		ceil := min(time.Second<<(n-1), time.Minute)
		if n > 8 {
			ceil = time.Minute
		}
		for range 50 {
			if w := d.backoff(n); w < ceil/2 || w > ceil {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, w, ceil/2, ceil)
			}
		}
	}
}

func TestEngineDrainsOnShutdown(t *testing.T) {
	synctest.Test(t, testEngineDrainsOnShutdown)
}

func testEngineDrainsOnShutdown(t *testing.T) {
	s := &fakeSink{}
	src := sourceFunc(func(ctx context.Context, emit func(agent.Batch)) error {
		emit(agent.Batch{Points: pts(3)})
		<-ctx.Done()
		emit(agent.Batch{Points: pts(2)}) // emitted while stopping: must still be written
		return nil
	})
	e, err := New(Config{SelfInterval: time.Hour, ShutdownTimeout: 5 * time.Second, Pipeline: PipelineConfig{Server: "s", MaxDomains: 10}},
		[]agent.Source{src}, []Output{{Sink: s, Buffer: MemoryBuffer()}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	synctest.Wait() // the source emitted and waits for the stop
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var self int
	for _, p := range s.got {
		if p.Measurement == "pmta_agent" {
			self++
		}
	}
	if len(s.got)-self != 5 || self == 0 {
		t.Fatalf("wrote %d points (%d self), want 5 data points and self points", len(s.got), self)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type sourceFunc func(ctx context.Context, emit func(agent.Batch)) error

func (sourceFunc) Name() string                                            { return "func" }
func (f sourceFunc) Run(ctx context.Context, emit func(agent.Batch)) error { return f(ctx, emit) }

func TestDeliveryPartialWriteResendsOnlyTheRest(t *testing.T) {
	s := &fakeSink{write: func(n int, p []agent.Point) error {
		if n == 0 {
			return agent.WithProgress(&agent.SinkError{Kind: agent.Retryable, Err: errors.New("timeout")}, 3)
		}
		return nil
	}}
	d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 5, MinBackoff: time.Millisecond}, discard())
	d.Enqueue(pts(5), nil)
	d.FlushOnce(context.Background())
	d.FlushOnce(context.Background())
	if !slices.Equal(values(s.got), []int64{3, 4}) || d.Queued() != 0 || d.Counts().Written != 5 {
		t.Fatalf("resent %v, queued %d, written %d", values(s.got), d.Queued(), d.Counts().Written)
	}
}

// After an outage the backlog drains oldest first, but fresh data waits
// behind at most one backlog entry.
func TestDeliveryFreshDataIsNotStarved(t *testing.T) {
	s := &fakeSink{}
	d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 1}, discard())
	d.Enqueue(pts(4), nil) // backlog: 0 1 2 3
	ctx := context.Background()
	d.FlushOnce(ctx) // 0
	d.FlushOnce(ctx) // 1
	fresh := agent.NewPoint("m", nil, []agent.Field{{Key: "i", Value: int64(100)}}, time.Unix(100, 0))
	d.Enqueue([]agent.Point{fresh}, nil)
	for range 10 {
		if _, more := d.FlushOnce(ctx); !more {
			break
		}
	}
	if got := values(s.got); !slices.Equal(got, []int64{0, 1, 100, 2, 3}) {
		t.Fatalf("write order %v, want the fresh point after at most one more backlog entry", got)
	}
}

func TestEnqueueCallsDurableOnceAllChunksAre(t *testing.T) {
	d := NewDelivery(&fakeSink{}, queue.NewMemory(100), DeliveryConfig{BatchSize: 2}, discard())
	calls := 0
	d.Enqueue(pts(5), func() { calls++ })
	d.FlushOnce(context.Background())
	d.FlushOnce(context.Background())
	if calls != 0 {
		t.Fatalf("durable called before the sink took every chunk of a memory store")
	}
	d.FlushOnce(context.Background())
	if calls != 1 {
		t.Fatalf("durable called %d times, want 1", calls)
	}
}

// refusingStore is a queue.Memory whose Append fails while full is set.
type refusingStore struct {
	*queue.Memory
	full bool
}

func (r *refusingStore) Append(p []agent.Point, durable func()) error {
	if r.full {
		return errors.New("no space left on device")
	}
	return r.Memory.Append(p, durable)
}

// A store that refuses appends (a full disk) does not lose the points nor
// the source's Done: they wait in memory, in order, and go in when it has
// room again.
func TestEnqueueRetriesRefusedAppends(t *testing.T) {
	st := &refusingStore{Memory: queue.NewMemory(100), full: true}
	s := &fakeSink{}
	d := NewDelivery(s, st, DeliveryConfig{BatchSize: 10}, discard())
	var done []int
	d.Enqueue(pts(2), func() { done = append(done, 1) })
	d.Enqueue(pts(3), func() { done = append(done, 2) })
	if _, more := d.FlushOnce(context.Background()); more || len(done) != 0 {
		t.Fatalf("nothing may be written or done while the store refuses; done=%v", done)
	}
	st.full = false
	d.retryRetained()
	for range 5 {
		d.FlushOnce(context.Background())
	}
	if !slices.Equal(done, []int{1, 2}) || len(s.got) != 5 {
		t.Fatalf("done %v, written %d; want [1 2] and 5", done, len(s.got))
	}
}

func TestInOrderDeliveryNeverJumpsAhead(t *testing.T) {
	s := &fakeSink{}
	d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 1, InOrder: true}, discard())
	d.Enqueue(pts(4), nil)
	ctx := context.Background()
	d.FlushOnce(ctx)
	d.FlushOnce(ctx)
	d.Enqueue([]agent.Point{agent.NewPoint("m", nil, []agent.Field{{Key: "i", Value: int64(100)}}, time.Unix(100, 0))}, nil)
	for range 10 {
		if _, more := d.FlushOnce(ctx); !more {
			break
		}
	}
	if got := values(s.got); !slices.Equal(got, []int64{0, 1, 2, 3, 100}) {
		t.Fatalf("write order %v, want strictly oldest first", got)
	}
}

func TestDeliveryPartialThenPermanentDropsOnlyTheRest(t *testing.T) {
	s := &fakeSink{write: func(n int, p []agent.Point) error {
		if n == 0 {
			return agent.WithProgress(&agent.SinkError{Kind: agent.Permanent, Rejected: 2, Err: errors.New("400")}, 2)
		}
		return nil
	}}
	d := NewDelivery(s, queue.NewMemory(100), DeliveryConfig{BatchSize: 4}, discard())
	d.Enqueue(pts(6), nil) // entries [0 1 2 3] and [4 5]
	for range 5 {
		d.FlushOnce(context.Background())
	}
	if got := values(s.got); !slices.Equal(got, []int64{4, 5}) || d.Counts().Refused != 2 || d.Counts().Written != 4 {
		t.Fatalf("wrote %v, dropped %d, written %d; want [4 5], 2 dropped (2 and 3), 4 written", got, d.Counts().Refused, d.Counts().Written)
	}
}
