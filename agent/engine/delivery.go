package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/ratelog"
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
	// DeadLetters keeps the points the sink refuses for good; without it
	// they are only counted (dropped_rejected) and logged.
	DeadLetters agent.DeadLetters
}

// logEvery is how often a continuing failure or refusal is logged again.
const logEvery = 5 * time.Minute

// Delivery owns one sink: the pipeline appends to its Store, and its loop
// writes the store's entries to the sink and acknowledges them. It never
// gives up on time; points leave the store only when the sink accepted them,
// when the sink refused them for good, or when the store's bound dropped
// them.
//
// No point can block the sink: a write refused for good (Permanent, or
// TooLarge for a single point) is split in halves until the refused points
// are found; only they go to the dead-letter file, with the reason, and the
// rest is written. Every point is counted once (see Stats).
//
// Order: the backlog drains oldest first, but an entry appended while a
// backlog drains is written next, so fresh data never waits behind more than
// one backlog batch.
type Delivery struct {
	sink  agent.Sink
	store agent.Store
	cfg   DeliveryConfig
	log   *slog.Logger
	now   func() time.Time

	mu         sync.Mutex // guards the write state below; FlushOnce runs one at a time
	cur        *inflight
	newestSeen uint64 // the newest entry at the last pick

	// The log: failures as state changes, refusals and a dead-letter file
	// that fails at most every logEvery each.
	fails         *ratelog.FailureLog
	endpoint      []any // "endpoint", where the sink writes, for the failure lines
	refusals      ratelog.Episode
	refusedPoints int64 // refused since the last line about them
	dlFails       ratelog.Episode
	tooLarge      ratelog.Episode

	// The counts of Stats; storeMu guards them (see Counts).
	recovered, droppedAtStart int64
	enqueued, written         int64
	dropPerm, deadLettered    int64 // refused for good: not kept, kept in the dead-letter file
	retainDropped             int64
	overlap                   int64 // settled here from entries the store's bound dropped meanwhile
	curCopy                   inflightCount

	// storeMu is held while points go into the store or leave it (append,
	// drop, acknowledge) and while the counts are read, so that they
	// reconcile at every moment (see Stats). Order: mu before storeMu.
	storeMu  sync.Mutex
	retained []retainedAppend // refused by the store, appended again before anything newer

	attempt      int
	failingSince atomic.Int64 // unix seconds of the first failure of the current episode, 0 when writing fine
	errs         atomic.Int64
	splits       atomic.Int64
	appendErr    atomic.Int64
	lastOK       atomic.Int64
	lastWrite    atomic.Int64 // nanoseconds the last successful Write took
}

// retainedAppend is a chunk the store refused, with the callback that says
// it is durable.
type retainedAppend struct {
	points  []agent.Point
	durable func()
}

// inflight is the entry being written: rest is what is not settled yet,
// limit how much of it the next Write sends — halved to find the points the
// sink refuses for good, back to maxLimit after a write that settled
// something — and maxLimit the most one Write may send (halved on TooLarge).
type inflight struct {
	seq      uint64
	total    int
	rest     []agent.Point
	limit    int
	maxLimit int
}

// NewDelivery returns the delivery loop for sink over store.
func NewDelivery(sink agent.Sink, store agent.Store, cfg DeliveryConfig, log *slog.Logger) *Delivery {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = agent.DefaultBatchSize
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DiskBuffer().MinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	d := &Delivery{sink: sink, store: store, cfg: cfg, log: log.With("sink", sink.Name()), now: time.Now}
	if e, ok := sink.(agent.Endpointer); ok {
		d.endpoint = []any{"endpoint", e.Endpoint()}
	}
	d.fails = ratelog.NewFailureLog(d.log.With(d.endpoint...), "sink "+sink.Name()+" write", logEvery,
		func() time.Time { return d.now() })
	d.refusals.Every, d.dlFails.Every, d.tooLarge.Every = logEvery, logEvery, logEvery
	_, points, _ := store.Pending()
	d.recovered = int64(points)
	d.droppedAtStart = storeDropped(store)
	return d
}

// Enqueue appends points to the store in entries of at most BatchSize and
// calls durable once all of them are durable. It never waits for the sink.
// When the store refuses an entry (a full disk) the error is counted and
// logged, and the entry is kept in memory and appended again — before any
// newer one, so that sources commit in order — on the next Enqueue or
// flush; durable is called only once it is stored.
func (d *Delivery) Enqueue(points []agent.Point, durable func()) {
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
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	d.enqueued += int64(len(points))
	for start := 0; start < len(points); start += d.cfg.BatchSize {
		end := min(start+d.cfg.BatchSize, len(points))
		d.retained = append(d.retained, retainedAppend{points: points[start:end:end], durable: onDurable})
	}
	d.appendRetainedLocked()
}

// appendRetainedLocked appends the retained chunks in order until the store
// refuses one. The caller holds storeMu.
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
				d.retainDropped += int64(len(old.points))
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
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	d.appendRetainedLocked()
}

// Queued returns the number of points waiting: in the store and not settled
// yet, or held in memory while the store refuses appends.
func (d *Delivery) Queued() int {
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	return int(d.countsLocked().Queued)
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
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	return len(d.retained)
}

// retainedPointsLocked counts the points the store refused, held in
// memory. The caller holds storeMu.
func (d *Delivery) retainedPointsLocked() int {
	n := 0
	for _, r := range d.retained {
		n += len(r.points)
	}
	return n
}

// next picks the entry to write: the oldest, except that an entry appended
// since the last pick, while older ones still wait, goes first — so during a
// backlog drain fresh data waits behind at most the one entry in flight.
func (d *Delivery) next() (agent.Entry, bool) {
	// Reading can drop an entry the disk damaged, and the entry picked is
	// in flight from here on: both under storeMu, for the counts.
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	e, ok := d.pick()
	if ok {
		d.curCopy = inflightCount{seq: e.Seq, total: len(e.Points), left: len(e.Points)}
	}
	return e, ok
}

func (d *Delivery) pick() (agent.Entry, bool) {
	oldest, ok := d.store.Oldest()
	if !ok {
		return agent.Entry{}, false
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
		n := len(e.Points)
		// An entry stored under a larger batch size (before a restart with
		// a smaller one) is written in batches of today's size.
		size := min(n, d.cfg.BatchSize)
		d.cur = &inflight{seq: e.Seq, total: n, rest: e.Points, limit: size, maxLimit: size}
		if n == 0 {
			d.settle(0, nil)
			return 0, d.hasMore()
		}
	}
	cur := d.cur
	chunk := cur.rest[:min(max(cur.limit, 1), len(cur.rest))]

	start := d.now()
	err := d.sink.Write(ctx, chunk)
	if err != nil && ctx.Err() != nil {
		// Stopping: the entry stays in the store, less what the sink took
		// before it was stopped, which must not be sent again.
		if n := min(agent.Settled(err), len(chunk)); n > 0 {
			d.settle(n, &d.written)
		}
		return 0, true
	}
	if err != nil && agent.Settled(err) >= len(chunk) {
		err = nil // every point went through after all
	}
	if err == nil {
		d.answered(start)
		d.settle(len(chunk), &d.written)
		if d.log.Enabled(ctx, slog.LevelDebug) { // no attributes built on the write path unless asked
			d.log.Debug("sink write", append(slices.Clip(d.endpoint), "points", len(chunk), "took", d.now().Sub(start))...)
		}
		return 0, d.hasMore()
	}

	d.errs.Add(1)
	if n := agent.Settled(err); n > 0 {
		// The sink took a leading part of the chunk: only the rest is
		// written again, and the error's kind is about the rest.
		d.answered(start)
		d.settle(n, &d.written)
		chunk = chunk[n:]
	}
	kind, retryAfter := agent.Classify(err)
	switch kind {
	case agent.Permanent:
		var se *agent.SinkError
		if len(chunk) > 1 && (!errors.As(err, &se) || se.Rejected != len(chunk)) {
			// The sink will never take some of these points: write
			// halves until they are found.
			cur.limit = len(chunk) / 2
			d.splits.Add(1)
			return 0, true
		}
		d.refuse(chunk, err)
		return 0, d.hasMore()
	case agent.TooLarge:
		if len(chunk) > 1 {
			cur.limit = len(chunk) / 2
			cur.maxLimit = cur.limit
			d.splits.Add(1)
			if due, _, held, _ := d.tooLarge.Hit(d.now()); due {
				d.log.Warn("sink refuses requests this large; writing smaller batches", append(slices.Clip(d.endpoint),
					"points", cur.limit, "held_back", held, "err", err)...)
			}
			return 0, true
		}
		d.refuse(chunk, err)
		return 0, d.hasMore()
	}
	d.attempt++
	wait = d.backoff(d.attempt)
	if kind == agent.Throttled && retryAfter > 0 {
		wait = min(retryAfter, 10*time.Minute)
	}
	if d.failingSince.Load() == 0 {
		d.failingSince.Store(d.now().Unix())
	}
	se := &agent.SinkError{Kind: kind, RetryAfter: retryAfter, Err: err}
	d.fails.Failed(se, "retry_in", wait.Round(time.Millisecond), "queued_points", d.Queued())
	return wait, true
}

// answered records that the sink took points.
func (d *Delivery) answered(start time.Time) {
	d.lastOK.Store(d.now().Unix())
	d.lastWrite.Store(int64(d.now().Sub(start)))
	d.attempt = 0
	d.failingSince.Store(0)
	d.fails.Succeeded()
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
