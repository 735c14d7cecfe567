package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DeliveryConfig bounds one sink's buffer and paces its retries.
type DeliveryConfig struct {
	// MaxPoints is how many points may wait for the sink; beyond it the
	// oldest are dropped and counted.
	MaxPoints int
	// BatchSize is the most points handed to one Write.
	BatchSize int
	// MinBackoff and MaxBackoff bound the jittered exponential back-off
	// between failed writes.
	MinBackoff, MaxBackoff time.Duration
}

// Delivery owns one sink: it buffers what the pipeline hands it, in order,
// and writes it with retries. It never gives up on time; points leave the
// buffer only when the sink accepted them, when the sink rejected them for
// good (Permanent), or when the buffer overflowed (oldest first). Every such
// loss is counted.
type Delivery struct {
	sink Sink
	cfg  DeliveryConfig
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	chunks   [][]Point
	queued   int
	overflow bool // inside an overflow episode, logged once
	wake     chan struct{}

	attempt   int  // consecutive failed writes of the head chunk
	failing   bool // a failure episode is under way
	lastLoud  time.Time
	written   atomic.Int64
	dropFull  atomic.Int64
	dropPerm  atomic.Int64
	errs      atomic.Int64
	splits    atomic.Int64
	lastOK    atomic.Int64
	lastWrite atomic.Int64 // nanoseconds of the last successful Write
}

// NewDelivery returns the delivery loop for sink.
func NewDelivery(sink Sink, cfg DeliveryConfig, log *slog.Logger) *Delivery {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.MaxPoints <= 0 {
		cfg.MaxPoints = 1_000_000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	return &Delivery{sink: sink, cfg: cfg, log: log.With("sink", sink.Name()), now: time.Now, wake: make(chan struct{}, 1)}
}

// Enqueue buffers points (shared, not copied: nobody may change them
// afterwards) and never blocks.
func (d *Delivery) Enqueue(points []Point) {
	if len(points) == 0 {
		return
	}
	d.mu.Lock()
	for start := 0; start < len(points); start += d.cfg.BatchSize {
		end := min(start+d.cfg.BatchSize, len(points))
		d.chunks = append(d.chunks, points[start:end:end])
		d.queued += end - start
	}
	for d.queued > d.cfg.MaxPoints && len(d.chunks) > 1 {
		old := d.chunks[0]
		d.chunks[0] = nil
		d.chunks = d.chunks[1:]
		d.queued -= len(old)
		d.attempt = 0
		d.dropFull.Add(int64(len(old)))
		if !d.overflow {
			d.overflow = true
			d.log.Warn("sink buffer full: dropping the oldest points", "max_points", d.cfg.MaxPoints,
				"first_dropped", old[0].Time)
		}
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Queued returns the number of points waiting.
func (d *Delivery) Queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queued
}

// Run writes until ctx is done.
func (d *Delivery) Run(ctx context.Context) {
	for ctx.Err() == nil {
		wait, more := d.FlushOnce(ctx)
		switch {
		case !more:
			select {
			case <-ctx.Done():
			case <-d.wake:
			}
		case wait > 0:
			// New data does not cut a back-off short.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// FlushOnce makes one write attempt of the oldest chunk. It returns how long
// to wait before the next attempt and whether anything is left to write.
func (d *Delivery) FlushOnce(ctx context.Context) (wait time.Duration, more bool) {
	d.mu.Lock()
	if len(d.chunks) == 0 {
		d.overflow = false
		d.mu.Unlock()
		return 0, false
	}
	head := d.chunks[0]
	d.mu.Unlock()

	start := d.now()
	err := d.sink.Write(ctx, head)
	if ctx.Err() != nil && err != nil {
		return 0, true // stopping; the points stay for Drain or are reported lost
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		d.pop(head)
		d.written.Add(int64(len(head)))
		d.lastOK.Store(d.now().Unix())
		d.lastWrite.Store(int64(d.now().Sub(start)))
		d.attempt = 0
		if d.failing {
			d.failing = false
			d.log.Info("sink writes again")
		}
		return 0, len(d.chunks) > 0
	}

	d.errs.Add(1)
	var partial interface{ Settled() int }
	if errors.As(err, &partial) {
		// The sink took (or rejected for good) a leading part of the chunk;
		// only the rest is retried.
		if n := partial.Settled(); n > 0 && n < len(head) && len(d.chunks) > 0 && sameChunk(d.chunks[0], head) {
			d.chunks[0] = head[n:]
			d.queued -= n
			d.written.Add(int64(n))
			head = d.chunks[0]
		}
	}
	kind, retryAfter := Classify(err)
	switch kind {
	case Permanent:
		d.pop(head)
		d.dropPerm.Add(int64(len(head)))
		d.log.Error("sink rejected points for good; dropped", "points", len(head), "err", err)
		return 0, len(d.chunks) > 0
	case TooLarge:
		if len(head) == 1 {
			d.pop(head)
			d.dropPerm.Add(1)
			d.log.Error("sink rejects a single point as too large; dropped", "err", err)
			return 0, len(d.chunks) > 0
		}
		if len(d.chunks) > 0 && sameChunk(d.chunks[0], head) {
			half := len(head) / 2
			d.chunks[0] = head[half:]
			d.chunks = append([][]Point{head[:half:half]}, d.chunks...)
			d.splits.Add(1)
		}
		return 0, true
	}
	d.attempt++
	wait = d.backoff(d.attempt)
	if kind == Throttled && retryAfter > 0 {
		wait = min(retryAfter, 10*time.Minute)
	}
	if !d.failing || d.now().Sub(d.lastLoud) > 10*time.Minute {
		d.failing = true
		d.lastLoud = d.now()
		d.log.Warn("sink write failed; will retry", "kind", kind.String(), "retry_in", wait.Round(time.Millisecond),
			"queued_points", d.queued, "err", err)
	}
	return wait, true
}

// pop removes head if it is still the oldest chunk (an overflow may have
// dropped it while the write was under way).
func (d *Delivery) pop(head []Point) {
	if len(d.chunks) == 0 || !sameChunk(d.chunks[0], head) {
		return
	}
	d.chunks[0] = nil
	d.chunks = d.chunks[1:]
	d.queued -= len(head)
}

func sameChunk(a, b []Point) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// backoff is the full-jitter exponential delay for the nth failure:
// uniformly between half and all of min(MaxBackoff, MinBackoff·2ⁿ⁻¹).
func (d *Delivery) backoff(n int) time.Duration {
	ceil := d.cfg.MinBackoff
	for i := 1; i < n && ceil < d.cfg.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, d.cfg.MaxBackoff)
	return ceil/2 + rand.N(ceil/2+1)
}

// Drain writes what is buffered until it is empty or ctx ends, without
// back-off sleeps longer than what ctx allows. It returns an error saying how
// many points were left unwritten.
func (d *Delivery) Drain(ctx context.Context) error {
	for {
		wait, more := d.FlushOnce(ctx)
		if !more {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if n := d.Queued(); n > 0 {
		return fmt.Errorf("sink %s: %d points not written before the shutdown deadline", d.sink.Name(), n)
	}
	return nil
}

// Component and Stats make a Delivery an agent.StatsReporter.
func (d *Delivery) Component() string { return "sink_" + d.sink.Name() }

// Stats reports the sink's buffer and write outcomes.
func (d *Delivery) Stats() []Field {
	return []Field{
		{Key: "queued_points", Value: int64(d.Queued())},
		{Key: "written_points", Value: d.written.Load()},
		{Key: "dropped_full", Value: d.dropFull.Load()},
		{Key: "dropped_rejected", Value: d.dropPerm.Load()},
		{Key: "errors", Value: d.errs.Load()},
		{Key: "splits", Value: d.splits.Load()},
		{Key: "last_success_unix", Value: d.lastOK.Load()},
		{Key: "write_duration_s", Value: time.Duration(d.lastWrite.Load()).Seconds()},
	}
}
