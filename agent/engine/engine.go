package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// EngineConfig is the engine's own part of the configuration.
type EngineConfig struct {
	// SelfInterval is how often pmta_agent points are emitted (0: never).
	SelfInterval time.Duration
	// ShutdownTimeout bounds the final drain of the sink buffers.
	ShutdownTimeout time.Duration
}

// Engine runs the sources, the pipeline and one delivery loop per sink.
type Engine struct {
	cfg        EngineConfig
	pipeline   *Pipeline
	deliveries []*Delivery
	sources    []agent.Source
	reporters  []agent.StatsReporter
	log        *slog.Logger
	now        func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// NewEngine wires sources to deliveries through pipeline. Every source,
// delivery and sink that is a StatsReporter reports as a pmta_agent
// component, as does the pipeline.
func NewEngine(cfg EngineConfig, pipeline *Pipeline, deliveries []*Delivery, sources []agent.Source, log *slog.Logger) *Engine {
	e := &Engine{cfg: cfg, pipeline: pipeline, deliveries: deliveries, sources: sources, log: log, now: time.Now}
	for _, s := range sources {
		if r, ok := s.(agent.StatsReporter); ok {
			e.reporters = append(e.reporters, r)
		}
	}
	e.reporters = append(e.reporters, pipeline)
	for _, d := range deliveries {
		e.reporters = append(e.reporters, d)
		if r, ok := d.sink.(agent.StatsReporter); ok {
			e.reporters = append(e.reporters, r)
		}
	}
	return e
}

// Run works until ctx is cancelled, then stops the sources, drains the sink
// buffers within ShutdownTimeout and returns. It returns an error when a
// source could not work at all or when points were left unwritten.
func (e *Engine) Run(ctx context.Context) error {
	dctx, stopDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	var dwg sync.WaitGroup
	for _, d := range e.deliveries {
		dwg.Go(func() { d.Run(dctx) })
	}

	sctx, stopSources := context.WithCancel(ctx)
	var swg sync.WaitGroup
	srcErrs := make(chan error, len(e.sources))
	for _, s := range e.sources {
		swg.Go(func() {
			if err := s.Run(sctx, e.pipeline.Emit); err != nil {
				srcErrs <- fmt.Errorf("source %s: %w", s.Name(), err)
				stopSources()
			}
		})
	}
	if e.cfg.SelfInterval > 0 {
		swg.Go(func() { e.selfLoop(sctx) })
	}
	<-sctx.Done()
	swg.Wait()
	stopSources()
	close(srcErrs)
	var errs []error
	for err := range srcErrs {
		errs = append(errs, err)
	}
	if e.cfg.SelfInterval > 0 {
		e.EmitSelf()
	}

	stopDeliveries()
	if !waitTimeout(&dwg, e.shutdownTimeout()) {
		// A write that ignores cancellation (a stuck pipe on stdout) must not
		// hold the process: what it holds stays in its store.
		errs = append(errs, fmt.Errorf("a sink write did not return within %s of the stop", e.shutdownTimeout()))
		return errors.Join(errs...)
	}
	errs = append(errs, e.drain())
	return errors.Join(errs...)
}

func (e *Engine) shutdownTimeout() time.Duration {
	if e.cfg.ShutdownTimeout <= 0 {
		return 10 * time.Second
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
func (e *Engine) Reporters() []agent.StatsReporter { return e.reporters }

// EmitSelf sends one pmta_agent point per component through the pipeline.
func (e *Engine) EmitSelf() {
	e.pipeline.Emit(agent.Batch{Source: "self", Points: e.SelfPoints(e.now())})
}

// SelfPoints returns the agent's own health as pmta_agent points.
func (e *Engine) SelfPoints(now time.Time) []agent.Point {
	pts := make([]agent.Point, 0, len(e.reporters))
	for _, r := range e.reporters {
		fields := r.Stats()
		if len(fields) == 0 {
			continue
		}
		pts = append(pts, agent.NewPoint("pmta_agent", []agent.Tag{{Key: "component", Value: r.Component()}}, fields, now))
	}
	return pts
}

// Close releases what the sources and sinks hold. It is safe to call
// without Run and more than once; ctx bounds how long it may take.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() {
			var errs []error
			for _, s := range e.sources {
				if c, ok := s.(agent.Closer); ok {
					errs = append(errs, c.Close())
				}
			}
			for _, d := range e.deliveries {
				if c, ok := d.sink.(agent.Closer); ok {
					errs = append(errs, c.Close())
				}
			}
			done <- errors.Join(errs...)
		}()
		select {
		case e.closeErr = <-done:
		case <-ctx.Done():
			e.closeErr = fmt.Errorf("close: %w", ctx.Err())
		}
	})
	return e.closeErr
}
