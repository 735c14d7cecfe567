package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/queue"

	"github.com/pmta-agent/pmta-agent/agent"
)

// keptLetters records what a delivery puts in its dead-letter file.
type keptLetters struct {
	points  []agent.Point
	reasons []string
	fail    bool
}

func (k *keptLetters) Keep(p []agent.Point, reason string) error {
	if k.fail {
		return errors.New("disk full")
	}
	k.points = append(k.points, p...)
	k.reasons = append(k.reasons, reason)
	return nil
}

// refusing returns a sink that refuses for good every write holding one of
// the bad values, as InfluxDB refuses a batch with one unparsable line.
func refusing(bad ...int64) *fakeSink {
	return &fakeSink{write: func(_ int, p []agent.Point) error {
		for _, v := range values(p) {
			if slices.Contains(bad, v) {
				return &agent.SinkError{Kind: agent.Permanent, Err: errors.New("HTTP 400: unable to parse")}
			}
		}
		return nil
	}}
}

func flushAll(t *testing.T, d *Delivery) {
	t.Helper()
	for range 10_000 {
		if _, more := d.FlushOnce(context.Background()); !more {
			return
		}
	}
	t.Fatal("delivery did not finish")
}

// One point the sink refuses for good costs itself: the batch is split until
// it is found, it goes to the dead-letter file with the reason, and every
// other point is written — in a bounded number of requests.
func TestDeliveryIsolatesRefusedPoints(t *testing.T) {
	s := refusing(5, 4000)
	dl := &keptLetters{}
	d := NewDelivery(s, queue.NewMemory(1<<20), DeliveryConfig{BatchSize: 5000, DeadLetters: dl}, discard())
	d.Enqueue(pts(5000), nil)
	flushAll(t, d)
	if got := values(dl.points); !slices.Equal(got, []int64{5, 4000}) {
		t.Fatalf("dead-lettered %v, want [5 4000]", got)
	}
	if len(s.got) != 4998 || d.Counts().Written != 4998 || d.Counts().DeadLettered != 2 || d.Counts().Refused != 0 {
		t.Fatalf("written %d/%d, dead %d, refused %d", len(s.got), d.Counts().Written, d.Counts().DeadLettered, d.Counts().Refused)
	}
	if !strings.Contains(dl.reasons[0], "unable to parse") || !strings.Contains(dl.reasons[0], "sink fake") {
		t.Errorf("reason %q does not say who refused and why", dl.reasons[0])
	}
	if s.calls > 60 {
		t.Errorf("%d requests to isolate 2 bad points in 5000", s.calls)
	}
}

// When the sink says how many it refused and that is all of them, nothing is
// split: they all go to the dead-letter file at once.
func TestDeliveryDeadLettersAllWhenAllRefused(t *testing.T) {
	s := &fakeSink{write: func(_ int, p []agent.Point) error {
		return &agent.SinkError{Kind: agent.Permanent, Rejected: len(p), Err: errors.New("partial write: field type conflict dropped=" + "n")}
	}}
	dl := &keptLetters{}
	d := NewDelivery(s, queue.NewMemory(1000), DeliveryConfig{BatchSize: 100, DeadLetters: dl}, discard())
	d.Enqueue(pts(250), nil)
	flushAll(t, d)
	if len(dl.points) != 250 || s.calls != 3 || d.splits.Load() != 0 {
		t.Fatalf("dead-lettered %d in %d calls with %d splits; want 250 in 3 calls, no split", len(dl.points), s.calls, d.splits.Load())
	}
}

// A single point the sink finds too large is refused like a bad one.
func TestDeliveryTooLargeSinglePointIsDeadLettered(t *testing.T) {
	s := &fakeSink{write: func(_ int, p []agent.Point) error {
		if slices.Contains(values(p), 3) {
			return &agent.SinkError{Kind: agent.TooLarge, Err: errors.New("413")}
		}
		return nil
	}}
	dl := &keptLetters{}
	d := NewDelivery(s, queue.NewMemory(1000), DeliveryConfig{BatchSize: 8, DeadLetters: dl}, discard())
	d.Enqueue(pts(8), nil)
	flushAll(t, d)
	if !slices.Equal(values(dl.points), []int64{3}) || len(s.got) != 7 {
		t.Fatalf("dead-lettered %v, wrote %d", values(dl.points), len(s.got))
	}
}

// A dead-letter file that cannot take the points does not stop delivery:
// they are counted as refused.
func TestDeliveryDeadLetterFailureCountsRefused(t *testing.T) {
	d := NewDelivery(refusing(1), queue.NewMemory(1000), DeliveryConfig{BatchSize: 4, DeadLetters: &keptLetters{fail: true}}, discard())
	d.Enqueue(pts(4), nil)
	flushAll(t, d)
	if d.Counts().Refused != 1 || d.Counts().DeadLettered != 0 || d.Counts().Written != 3 {
		t.Fatalf("refused %d dead %d written %d", d.Counts().Refused, d.Counts().DeadLettered, d.Counts().Written)
	}
}

func statInt(fields []agent.Field, key string) int64 {
	for _, f := range fields {
		if f.Key == key {
			n, _ := agent.FieldNumber(f.Value)
			return int64(n)
		}
	}
	return -1
}

// checkReconciles asserts the equation Delivery.Stats documents.
func checkReconciles(t *testing.T, d *Delivery) {
	t.Helper()
	f := d.Stats()
	in := statInt(f, "recovered_points") + statInt(f, "enqueued_points")
	out := statInt(f, "written_points") + statInt(f, "dropped_rejected") + statInt(f, "dead_lettered_points") +
		statInt(f, "dropped_points") + statInt(f, "queued_points")
	if in != out {
		t.Fatalf("recovered+enqueued = %d, written+refused+dead+dropped+queued = %d: %v", in, out, f)
	}
}

// Whatever happens — retries, partial writes, refusals, a bound that drops
// the entry being written — every point is counted exactly once, at every
// moment.
func TestDeliveryReconciles(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		bad := map[int64]bool{}
		s := &fakeSink{write: func(_ int, p []agent.Point) error {
			for _, v := range values(p) {
				if bad[v] {
					return &agent.SinkError{Kind: agent.Permanent, Err: errors.New("bad point")}
				}
			}
			switch rng.IntN(6) {
			case 0:
				return errors.New("connection refused")
			case 1:
				if len(p) > 1 {
					return agent.WithProgress(&agent.SinkError{Kind: agent.Retryable, Err: errors.New("timeout")}, rng.IntN(len(p)))
				}
			case 2:
				if len(p) > 2 {
					return &agent.SinkError{Kind: agent.TooLarge, Err: errors.New("413")}
				}
			}
			return nil
		}}
		st := queue.NewMemory(30 + rng.IntN(40))
		var dl agent.DeadLetters
		if seed%2 == 0 {
			dl = &keptLetters{}
		}
		d := NewDelivery(s, st, DeliveryConfig{BatchSize: 1 + rng.IntN(10), DeadLetters: dl, MinBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond}, discard())
		next := int64(0)
		var prevDropped int64
		monotonic := func() {
			if n := statInt(d.Stats(), "dropped_points"); n < prevDropped {
				t.Fatalf("seed %d: dropped_points went down from %d to %d", seed, prevDropped, n)
			} else {
				prevDropped = n
			}
		}
		for step := 0; step < 400; step++ {
			if rng.IntN(3) == 0 {
				n := 1 + rng.IntN(15)
				batch := make([]agent.Point, n)
				for i := range batch {
					batch[i] = agent.NewPoint("m", nil, []agent.Field{{Key: "i", Value: next}}, time.Unix(next, 0))
					if rng.IntN(25) == 0 {
						bad[next] = true
					}
					next++
				}
				d.Enqueue(batch, nil)
			}
			d.FlushOnce(context.Background())
			checkReconciles(t, d)
			monotonic()
		}
		for range 10_000 {
			if _, more := d.FlushOnce(context.Background()); !more {
				break
			}
			checkReconciles(t, d)
		}
		if d.Queued() != 0 {
			t.Fatalf("seed %d: %d points left", seed, d.Queued())
		}
	}
}

// The counts reconcile in every reading, also while points are appended,
// written, refused and dropped by the bound on other goroutines.
func TestDeliveryReconcilesConcurrently(t *testing.T) {
	var calls atomic.Int64
	s := &fakeSink{write: func(_ int, p []agent.Point) error {
		switch calls.Add(1) % 5 {
		case 0:
			return errors.New("connection refused")
		case 1:
			if len(p) > 1 {
				return agent.WithProgress(&agent.SinkError{Kind: agent.Retryable, Err: errors.New("timeout")}, len(p)/2)
			}
		case 2:
			return &agent.SinkError{Kind: agent.Permanent, Err: errors.New("bad point")}
		}
		return nil
	}}
	d := NewDelivery(s, queue.NewMemory(40), DeliveryConfig{BatchSize: 7, DeadLetters: &keptLetters{},
		MinBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond}, discard())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			d.Enqueue(pts(1+int(calls.Load()%13)), nil)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			d.FlushOnce(ctx)
		}
	})
	readings := 0
	for ctx.Err() == nil {
		c := d.Counts()
		if in, out := c.Recovered+c.Enqueued, c.Written+c.Refused+c.DeadLettered+c.Dropped+c.Queued; in != out {
			t.Fatalf("reading %d: in %d, out %d: %+v", readings, in, out, c)
		}
		readings++
	}
	wg.Wait()
	t.Logf("%d consistent readings", readings)
}
