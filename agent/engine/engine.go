package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// DefaultShutdownTimeout bounds a stop when the configuration does not say.
const DefaultShutdownTimeout = 10 * time.Second

// Config is the engine's own part of the configuration.
type Config struct {
	// StateDir holds the disk queues (queue/<sink>) and the dead-letter
	// files (deadletter/<sink>.lp).
	StateDir string
	// SelfInterval is how often pmta_agent points are emitted (0: never).
	SelfInterval time.Duration
	// ShutdownTimeout bounds the final drain of the sink buffers, and
	// Close.
	ShutdownTimeout time.Duration
	// Pipeline tags and bounds the points.
	Pipeline PipelineConfig
}

// Engine runs the sources, the pipeline and one delivery loop per sink. It
// owns all of them from New on: it opens the sinks' buffers, starts and
// stops the loops, and Close releases everything — the one owner the
// commands need not know the parts of. Run, Gather and Feed are its modes:
// the daemon, one collection round, and a backfill.
type Engine struct {
	cfg        Config
	pipeline   *Pipeline
	deliveries []*Delivery
	reloads    chan reloadRequest // taken by Run while it runs
	ended      chan struct{}      // closed when Run stops taking them
	endOnce    sync.Once

	mu        sync.Mutex // sources and reporters change on a reload
	sources   []agent.Source
	reporters []agent.StatsReporter

	stores  []io.Closer // buffers and dead-letter files: closed first
	started func()      // see OnStarted
	sinks   []io.Closer // closed last, under the shutdown deadline
	log     *slog.Logger
	now     func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// New builds the engine: a buffer and a delivery loop for each output,
// and the pipeline that feeds them and taps (what else sees every point:
// the latest values for /metrics). On error, what it opened is closed, and
// the sources and sinks given are closed too: they are the engine's now.
// Every source, delivery and sink that is a StatsReporter reports as a
// pmta_agent component, as does the pipeline.
func New(cfg Config, sources []agent.Source, outputs []Output, taps []Enqueuer, log *slog.Logger) (*Engine, error) {
	e := &Engine{cfg: cfg, sources: sources, log: log, now: time.Now,
		reloads: make(chan reloadRequest), ended: make(chan struct{})}
	var enq []Enqueuer
	for _, o := range outputs {
		e.sinks = append(e.sinks, closerOf(o.Sink))
	}
	for _, o := range outputs {
		d, st, dl, err := openOutput(cfg.StateDir, o, log)
		if err != nil {
			return nil, errors.Join(err, e.Close(context.Background()))
		}
		e.stores = append(e.stores, closerOf(st))
		if dl != nil {
			e.stores = append(e.stores, dl)
		}
		e.deliveries = append(e.deliveries, d)
		enq = append(enq, d)
	}
	e.pipeline = NewPipeline(cfg.Pipeline, append(enq, taps...)...)
	e.setSources(sources)
	return e, nil
}

// setSources makes sources the engine's, and its reporters theirs, the
// pipeline's and the deliveries'.
func (e *Engine) setSources(sources []agent.Source) {
	var reporters []agent.StatsReporter
	for _, s := range sources {
		if r, ok := s.(agent.StatsReporter); ok {
			reporters = append(reporters, r)
		}
	}
	reporters = append(reporters, e.pipeline)
	for _, d := range e.deliveries {
		reporters = append(reporters, d)
		if r, ok := d.sink.(agent.StatsReporter); ok {
			reporters = append(reporters, r)
		}
	}
	e.mu.Lock()
	e.sources, e.reporters = sources, reporters
	e.mu.Unlock()
}

// closerOf returns v as an io.Closer, or a no-op one.
func closerOf(v any) io.Closer {
	if c, ok := v.(agent.Closer); ok {
		return c
	}
	return nopCloser{}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Pipeline returns the engine's pipeline.
func (e *Engine) Pipeline() *Pipeline { return e.pipeline }

// Sources returns the sources: those given to New, or a reload's.
func (e *Engine) Sources() []agent.Source {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.sources)
}

// Deliveries returns the delivery loops, one per sink, in the order of the
// outputs given to New.
func (e *Engine) Deliveries() []*Delivery { return e.deliveries }

// OnStarted sets a function Run calls once every delivery loop, source and
// the self-monitoring loop have been started: systemd's READY=1.
func (e *Engine) OnStarted(f func()) { e.started = f }

// Run works until ctx is cancelled, then stops the sources, drains the sink
// buffers within ShutdownTimeout and returns. It returns an error when a
// source could not work at all or when points were left unwritten. While it
// runs, Reload changes the sources and the pipeline.
func (e *Engine) Run(ctx context.Context) error {
	stop := e.startDeliveries(ctx)
	sctx, stopSources := context.WithCancel(ctx)
	sup := newSupervisor(sctx, stopSources, e.pipeline.Emit)
	for _, s := range e.Sources() {
		sup.start(s)
	}
	var swg sync.WaitGroup
	if e.cfg.SelfInterval > 0 {
		swg.Go(func() { e.selfLoop(sctx) })
	}
	if e.started != nil {
		e.started()
	}
	for done := false; !done; {
		select {
		case <-sctx.Done():
			done = true
		case req := <-e.reloads:
			req.result <- e.reload(sctx, sup, req.r)
		}
	}
	e.endOnce.Do(func() { close(e.ended) })
	errs := sup.wait()
	swg.Wait()
	stopSources()
	if e.cfg.SelfInterval > 0 {
		e.EmitSelf()
	}
	return errors.Join(append(errs, stop())...)
}

// Gather runs one collection round of every source that can gather on
// demand and returns their points as the pipeline makes them (tagged and
// bounded), without writing them to the sinks: `pmta-agent once`.
func (e *Engine) Gather(ctx context.Context) ([]agent.Point, error) {
	var pts []agent.Point
	var errs []error
	for _, s := range e.Sources() {
		g, ok := s.(agent.Gatherer)
		if !ok {
			continue
		}
		b, err := g.Gather(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
		pts = append(pts, e.pipeline.Process(b.Points)...)
	}
	return pts, errors.Join(errs...)
}

// FeedOptions bounds Feed.
type FeedOptions struct {
	// High holds the producer back while any sink has more than this many
	// points waiting, so that memory stays flat however much it emits.
	High int
	// Stall gives up when a sink with points waiting has taken none —
	// written, refused, dead-lettered or dropped — for this long (a wrong
	// bucket answers 404 for ever); 0 waits for ever.
	Stall time.Duration
}

// Feed runs the delivery loops while produce emits batches (a backfill),
// holding produce back as FeedOptions.High says. Once produce returns, Feed
// waits until every sink took what was emitted — without a deadline unless
// ctx ends or a sink stalls (FeedOptions.Stall: then produce's context is
// cancelled and Feed returns the stall); then ShutdownTimeout bounds the
// last attempt. What a sink did not take stays counted as queued.
func (e *Engine) Feed(ctx context.Context, opts FeedOptions, produce func(ctx context.Context, emit func(agent.Batch)) error) error {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := e.startDeliveries(ctx)
	watch := newStallWatch(e.deliveries, opts.Stall, e.now)
	emit := func(b agent.Batch) {
		e.pipeline.Emit(b)
		if err := e.waitForRoom(pctx, opts.High, watch); err != nil {
			cancel(err)
		}
	}
	err := produce(pctx, emit)
	if stalled := context.Cause(pctx); ctx.Err() == nil && pctx.Err() != nil {
		err = stalled // produce's error is only that it was stopped
	} else if werr := e.waitForRoom(ctx, 0, watch); werr != nil {
		err = errors.Join(err, werr)
	}
	return errors.Join(err, stop())
}

// startDeliveries runs the delivery loops until the returned function is
// called, which stops them and drains what they hold within
// ShutdownTimeout. They run on after ctx ends, until then: points emitted
// while the sources stop still go out.
func (e *Engine) startDeliveries(ctx context.Context) (stop func() error) {
	dctx, stopDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	var dwg sync.WaitGroup
	for _, d := range e.deliveries {
		dwg.Go(func() { d.Run(dctx) })
	}
	return func() error {
		stopDeliveries()
		if !waitTimeout(&dwg, e.shutdownTimeout()) {
			// A write that ignores cancellation (a stuck pipe on stdout)
			// must not hold the process: what it holds stays in its store.
			return fmt.Errorf("a sink write did not return within %s of the stop", e.shutdownTimeout())
		}
		return e.drain()
	}
}

// waitForRoom blocks while any delivery holds more than high points (0:
// until all are empty), until ctx ends, or until watch finds a sink
// stalled, which it returns. The deliveries signal no progress, so it
// looks every few milliseconds.
func (e *Engine) waitForRoom(ctx context.Context, high int, watch *stallWatch) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		full := false
		for _, d := range e.deliveries {
			if d.Queued() > high {
				full = true
			}
		}
		if !full {
			return nil
		}
		if err := watch.check(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// stallWatch finds a delivery that has points waiting and has taken none
// for a while.
type stallWatch struct {
	ds      []*Delivery
	limit   time.Duration // 0: never stalled
	now     func() time.Time
	checked time.Time
	taken   []int64     // points each delivery had taken when last seen taking any
	since   []time.Time // since when taken has not moved while points waited
}

func newStallWatch(ds []*Delivery, limit time.Duration, now func() time.Time) *stallWatch {
	return &stallWatch{ds: ds, limit: limit, now: now, taken: make([]int64, len(ds)), since: make([]time.Time, len(ds))}
}

// check returns an error naming the first stalled delivery. It reads the
// counts at most ten times a second; after a longer pause (nobody waited
// for room meanwhile, so nobody watched) it starts afresh.
func (w *stallWatch) check() error {
	now := w.now()
	if w.limit <= 0 || now.Sub(w.checked) < 100*time.Millisecond {
		return nil
	}
	fresh := now.Sub(w.checked) > time.Second
	w.checked = now
	for i, d := range w.ds {
		c := d.Counts()
		if taken := c.taken(); fresh || taken != w.taken[i] || c.Queued == 0 {
			w.taken[i], w.since[i] = taken, now
			continue
		}
		if now.Sub(w.since[i]) >= w.limit {
			return fmt.Errorf("sink %s took none of its %d waiting points for %s; giving up (its errors are in the log)",
				d.sink.Name(), c.Queued, w.limit)
		}
	}
	return nil
}

func (e *Engine) shutdownTimeout() time.Duration {
	if e.cfg.ShutdownTimeout <= 0 {
		return DefaultShutdownTimeout
	}
	return e.cfg.ShutdownTimeout
}

// waitTimeout waits for wg for at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (e *Engine) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), e.shutdownTimeout())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(e.deliveries))
	for i, d := range e.deliveries {
		wg.Go(func() { errs[i] = d.Drain(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *Engine) selfLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.SelfInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.EmitSelf()
		}
	}
}

// Reporters returns every component that reports its own health.
func (e *Engine) Reporters() []agent.StatsReporter {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reporters)
}

// EmitSelf sends one pmta_agent point per component through the pipeline.
func (e *Engine) EmitSelf() {
	e.pipeline.Emit(agent.Batch{Source: "self", Points: e.SelfPoints(e.now())})
}

// SelfPoints returns the agent's own health as pmta_agent points.
func (e *Engine) SelfPoints(now time.Time) []agent.Point {
	reporters := e.Reporters()
	pts := make([]agent.Point, 0, len(reporters))
	for _, r := range reporters {
		fields := r.Stats()
		if len(fields) == 0 {
			continue
		}
		pts = append(pts, agent.NewPoint("pmta_agent", []agent.Tag{{Key: "component", Value: r.Component()}}, fields, now))
	}
	return pts
}

// Close releases everything the engine owns, in the order that keeps the
// promise: first the buffers (a disk queue fsyncs, which makes the points
// in it durable, so a tailer may checkpoint past them, and releases its
// lock) and the dead-letter files, then the sources (a tailer releases its
// state directory; it saved its checkpoint as the points became durable),
// and last the sinks, whose Close may talk to a slow server. It is safe to
// call without Run and more than once; ctx and ShutdownTimeout bound how
// long the sinks may take — nothing local waits on them.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, c := range e.stores {
			errs = append(errs, c.Close())
		}
		for _, s := range e.Sources() {
			errs = append(errs, closerOf(s).Close())
		}
		ctx, cancel := context.WithTimeout(ctx, e.shutdownTimeout())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			var errs []error
			for _, c := range e.sinks {
				errs = append(errs, c.Close())
			}
			done <- errors.Join(errs...)
		}()
		select {
		case err := <-done:
			errs = append(errs, err)
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("close sinks: %w", ctx.Err()))
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}
