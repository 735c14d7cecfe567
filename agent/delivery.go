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

// DeliveryConfig paces one sink's writes.
type DeliveryConfig struct {
	// BatchSize is the most points handed to one Write (and put in one
	// store entry).
	BatchSize int
	// MinBackoff and MaxBackoff bound the jittered exponential back-off
	// between failed writes.
	MinBackoff, MaxBackoff time.Duration
	// Durable says the store survives a restart: what Drain cannot write
	// before its deadline waits for the next start instead of being lost.
	Durable bool
	// InOrder turns off the fresh-data-first pick, for sinks whose backend
	// needs points in time order (OTLP cumulative sums).
	InOrder bool
	// MaxRetained bounds the entries kept in memory while the store refuses
	// appends (a full disk); beyond it the oldest are dropped and counted.
	MaxRetained int
}

// Delivery owns one sink: the pipeline appends to its Store, and its loop
// writes the store's entries to the sink and acknowledges them. It never
// gives up on time; points leave the store only when the sink accepted them,
// when the sink rejected them for good (Permanent, counted), or when the
// store's bound dropped them (counted by the store).
//
// Order: the backlog drains oldest first, but an entry appended while a
// backlog drains is written next, so fresh data never waits behind more than
// one backlog batch.
type Delivery struct {
	sink  Sink
	store Store
	cfg   DeliveryConfig
	log   *slog.Logger
	now   func() time.Time

	mu         sync.Mutex // guards the write state below; FlushOnce runs one at a time
	cur        *inflight
	newestSeen uint64 // the newest entry at the last pick

	retainMu sync.Mutex
	retained []retainedAppend // refused by the store, appended again before anything newer

	attempt       int
	failing       bool
	failingSince  atomic.Int64 // unix seconds of the first failure of the current episode, 0 when writing fine
	lastLoud      time.Time
	written       atomic.Int64
	dropPerm      atomic.Int64
	errs          atomic.Int64
	splits        atomic.Int64
	appendErr     atomic.Int64
	retainDropped atomic.Int64
	lastOK        atomic.Int64
	lastWrite     atomic.Int64 // nanoseconds the last successful Write took
}

// retainedAppend is a chunk the store refused, with the callback that says
// it is durable.
type retainedAppend struct {
	points  []Point
	durable func()
}

// inflight is the entry being written: rest is what the sink has not taken
// yet, limit how much of it the next Write sends (halved on TooLarge).
type inflight struct {
	seq   uint64
	rest  []Point
	limit int
}

// NewDelivery returns the delivery loop for sink over store.
func NewDelivery(sink Sink, store Store, cfg DeliveryConfig, log *slog.Logger) *Delivery {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	return &Delivery{sink: sink, store: store, cfg: cfg, log: log.With("sink", sink.Name()), now: time.Now}
}

// Enqueue appends points to the store in entries of at most BatchSize and
// calls durable once all of them are durable. It never waits for the sink.
// When the store refuses an entry (a full disk) the error is counted and
// logged, and the entry is kept in memory and appended again — before any
// newer one, so that sources commit in order — on the next Enqueue or
// flush; durable is called only once it is stored.
func (d *Delivery) Enqueue(points []Point, durable func()) {
	if len(points) == 0 {
		if durable != nil {
			durable()
		}
		return
	}
	chunks := (len(points) + d.cfg.BatchSize - 1) / d.cfg.BatchSize
	var left atomic.Int64
	left.Store(int64(chunks))
	onDurable := func() {
		if left.Add(-1) == 0 && durable != nil {
			durable()
		}
	}
	d.retainMu.Lock()
	defer d.retainMu.Unlock()
	for start := 0; start < len(points); start += d.cfg.BatchSize {
		end := min(start+d.cfg.BatchSize, len(points))
		d.retained = append(d.retained, retainedAppend{points: points[start:end:end], durable: onDurable})
	}
	d.appendRetainedLocked()
}

// appendRetainedLocked appends the retained chunks in order until the store
// refuses one. The caller holds retainMu.
func (d *Delivery) appendRetainedLocked() {
	for len(d.retained) > 0 {
		r := d.retained[0]
		if err := d.store.Append(r.points, r.durable); err != nil {
			d.appendErr.Add(1)
			if d.appendErr.Load() == 1 || len(d.retained) == 1 {
				d.log.Error("cannot buffer points for the sink; keeping them in memory and retrying", "points", len(r.points),
					"retained_entries", len(d.retained), "err", err)
			}
			limit := d.cfg.MaxRetained
			if limit <= 0 {
				limit = 1000
			}
			for len(d.retained) > limit {
				old := d.retained[0]
				d.retained[0] = retainedAppend{}
				d.retained = d.retained[1:]
				d.retainDropped.Add(int64(len(old.points)))
				// The loss is counted; the source may move on past it.
				if old.durable != nil {
					old.durable()
				}
			}
			return
		}
		d.retained[0] = retainedAppend{}
		d.retained = d.retained[1:]
	}
}

// retryRetained appends what the store refused before, if anything.
func (d *Delivery) retryRetained() {
	d.retainMu.Lock()
	defer d.retainMu.Unlock()
	d.appendRetainedLocked()
}

// Queued returns the number of points waiting.
func (d *Delivery) Queued() int {
	_, points, _ := d.store.Pending()
	return points
}

// Run writes until ctx is done.
func (d *Delivery) Run(ctx context.Context) {
	for ctx.Err() == nil {
		d.retryRetained()
		wait, more := d.FlushOnce(ctx)
		switch {
		case !more:
			var retry <-chan time.Time
			var t *time.Timer
			if d.retainedCount() > 0 {
				t = time.NewTimer(d.cfg.MinBackoff)
				retry = t.C
			}
			select {
			case <-ctx.Done():
			case <-d.store.Notify():
			case <-retry:
			}
			if t != nil {
				t.Stop()
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

func (d *Delivery) retainedCount() int {
	d.retainMu.Lock()
	defer d.retainMu.Unlock()
	return len(d.retained)
}

// next picks the entry to write: the oldest, except that an entry appended
// since the last pick, while older ones still wait, goes first — so during a
// backlog drain fresh data waits behind at most the one entry in flight.
func (d *Delivery) next() (Entry, bool) {
	oldest, ok := d.store.Oldest()
	if !ok {
		return Entry{}, false
	}
	if d.cfg.InOrder {
		return oldest, true
	}
	newest, _ := d.store.Newest()
	seenBefore := d.newestSeen
	d.newestSeen = max(d.newestSeen, newest.Seq)
	if seenBefore > 0 && newest.Seq > seenBefore && oldest.Seq <= seenBefore {
		return newest, true
	}
	return oldest, true
}

// FlushOnce makes one write attempt. It returns how long to wait before the
// next attempt and whether anything is left to write.
func (d *Delivery) FlushOnce(ctx context.Context) (wait time.Duration, more bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		e, ok := d.next()
		if !ok {
			return 0, false
		}
		d.cur = &inflight{seq: e.Seq, rest: e.Points, limit: len(e.Points)}
	}
	cur := d.cur
	chunk := cur.rest[:min(cur.limit, len(cur.rest))]

	start := d.now()
	err := d.sink.Write(ctx, chunk)
	if err != nil && ctx.Err() != nil {
		return 0, true // stopping: the entry stays in the store
	}
	if err == nil {
		d.written.Add(int64(len(chunk)))
		d.lastOK.Store(d.now().Unix())
		d.lastWrite.Store(int64(d.now().Sub(start)))
		d.attempt = 0
		if d.failing {
			d.failing = false
			d.failingSince.Store(0)
			d.log.Info("sink writes again")
		}
		d.advance(len(chunk))
		return 0, d.hasMore()
	}

	d.errs.Add(1)
	var partial interface{ Settled() int }
	if errors.As(err, &partial) {
		// The sink took (or rejected for good) a leading part of the chunk;
		// only the rest is retried.
		if n := partial.Settled(); n > 0 && n < len(chunk) {
			d.written.Add(int64(n))
			cur.rest = cur.rest[n:]
			cur.limit = len(cur.rest)
			chunk = chunk[n:] // what the error's kind is about
		}
	}
	kind, retryAfter := Classify(err)
	switch kind {
	case Permanent:
		d.dropPerm.Add(int64(len(chunk)))
		d.log.Error("sink rejected points for good; dropped", "points", len(chunk), "err", err)
		d.advance(len(chunk))
		return 0, d.hasMore()
	case TooLarge:
		if len(chunk) == 1 {
			d.dropPerm.Add(1)
			d.log.Error("sink rejects a single point as too large; dropped", "err", err)
			d.advance(1)
			return 0, d.hasMore()
		}
		cur.limit = len(chunk) / 2
		d.splits.Add(1)
		return 0, true
	}
	d.attempt++
	wait = d.backoff(d.attempt)
	if kind == Throttled && retryAfter > 0 {
		wait = min(retryAfter, 10*time.Minute)
	}
	if !d.failing {
		d.failingSince.Store(d.now().Unix())
	}
	if !d.failing || d.now().Sub(d.lastLoud) > 10*time.Minute {
		d.failing = true
		d.lastLoud = d.now()
		d.log.Warn("sink write failed; will retry", "kind", kind.String(), "retry_in", wait.Round(time.Millisecond),
			"queued_points", d.Queued(), "err", err)
	}
	return wait, true
}

// advance takes n points off the in-flight entry and acknowledges the entry
// once nothing is left of it.
func (d *Delivery) advance(n int) {
	cur := d.cur
	cur.rest = cur.rest[n:]
	if len(cur.rest) > 0 {
		cur.limit = min(max(cur.limit, 1), len(cur.rest))
		return
	}
	if err := d.store.Ack(cur.seq); err != nil {
		// The entry will be written again after a restart: harmless, as
		// points replay onto the same series and timestamps.
		d.log.Warn("cannot acknowledge a written entry", "seq", cur.seq, "err", err)
	}
	d.cur = nil
}

func (d *Delivery) hasMore() bool {
	if d.cur != nil {
		return true
	}
	entries, _, _ := d.store.Pending()
	return entries > 0
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

// Drain writes what is buffered until it is empty or ctx ends. It returns an
// error saying how many points were left unwritten (a durable store keeps
// them for the next start).
func (d *Delivery) Drain(ctx context.Context) error {
	for ctx.Err() == nil {
		wait, more := d.FlushOnce(ctx)
		if !more {
			return nil
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	if n := d.Queued(); n > 0 {
		if d.cfg.Durable {
			d.log.Info("points stay in the queue for the next start", "points", n)
			return nil
		}
		return fmt.Errorf("sink %s: %d points not written before the shutdown deadline", d.sink.Name(), n)
	}
	return nil
}

// Component and Stats make a Delivery an agent.StatsReporter.
func (d *Delivery) Component() string { return "sink_" + d.sink.Name() }

// Stats reports the sink's buffer and write outcomes, with the store's own.
func (d *Delivery) Stats() []Field {
	entries, points, bytes := d.store.Pending()
	f := []Field{
		{Key: "queued_points", Value: int64(points)},
		{Key: "queued_entries", Value: int64(entries)},
		{Key: "queued_bytes", Value: bytes},
		{Key: "written_points", Value: d.written.Load()},
		{Key: "dropped_rejected", Value: d.dropPerm.Load()},
		{Key: "errors", Value: d.errs.Load()},
		{Key: "append_errors", Value: d.appendErr.Load()},
		{Key: "retained_entries", Value: int64(d.retainedCount())},
		{Key: "dropped_unstored", Value: d.retainDropped.Load()},
		{Key: "splits", Value: d.splits.Load()},
		{Key: "last_success_unix", Value: d.lastOK.Load()},
		{Key: "failing_since_unix", Value: d.failingSince.Load()},
		{Key: "write_duration_s", Value: time.Duration(d.lastWrite.Load()).Seconds()},
	}
	if r, ok := d.store.(interface{ Stats() []Field }); ok {
		for _, sf := range r.Stats() {
			if sf.Key == "bytes" || sf.Key == "entries" || sf.Key == "points" {
				continue // the same as queued_* above
			}
			f = append(f, sf)
		}
	}
	return f
}
