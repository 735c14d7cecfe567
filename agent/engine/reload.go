package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Reload is what a new configuration changes while the engine runs: the
// pipeline's settings and some of the sources. The deliveries, their
// buffers and their sinks stay as they are, with every point they hold.
type Reload struct {
	// Pipeline, when not nil, replaces the pipeline's settings.
	Pipeline *PipelineConfig
	// Sources are replaced, added or removed in this order.
	Sources []SourceChange
}

// SourceChange replaces, adds or removes the source named Name.
type SourceChange struct {
	Name string
	// Build makes the new source, called once the old one has stopped and
	// released what it held (the tailer's state directory); nil removes the
	// source. A source returned with an error runs, and the error is
	// reported: a fallback to the settings it had.
	Build func() (agent.Source, error)
}

// Settler is a source whose successor may only take over once every batch
// it emitted is durable in the sinks' buffers: the tailer, whose checkpoint
// those batches still write.
type Settler interface {
	Settle(ctx context.Context) error
}

type reloadRequest struct {
	r      Reload
	result chan error
}

// Reload applies r while Run runs and returns once it is applied (or ctx
// ends first, or Run has ended). A source that is replaced is stopped first; if it is a
// Settler that does not settle within ShutdownTimeout, it runs on as it was
// and the error says so. The error lists what was not applied.
func (e *Engine) Reload(ctx context.Context, r Reload) error {
	req := reloadRequest{r: r, result: make(chan error, 1)}
	select {
	case e.reloads <- req:
	case <-e.ended:
		return errors.New("reload: the engine has stopped")
	case <-ctx.Done():
		return fmt.Errorf("reload: %w", ctx.Err())
	}
	return <-req.result
}

// reload is Run's side of Reload.
func (e *Engine) reload(ctx context.Context, sup *supervisor, r Reload) error {
	if r.Pipeline != nil {
		e.pipeline.Reconfigure(*r.Pipeline)
	}
	sources := e.Sources()
	var errs []error
	for _, c := range r.Sources {
		if i := slices.IndexFunc(sources, func(s agent.Source) bool { return s.Name() == c.Name }); i >= 0 {
			old := sources[i]
			sup.stop(i)
			if err := e.settle(ctx, old); err != nil {
				sup.restart(i)
				errs = append(errs, fmt.Errorf("source %s runs on as it was: %w", c.Name, err))
				continue
			}
			if err := closerOf(old).Close(); err != nil {
				errs = append(errs, fmt.Errorf("close source %s: %w", c.Name, err))
			}
			sources = slices.Delete(sources, i, i+1)
			sup.remove(i)
		}
		if c.Build == nil {
			continue
		}
		s, err := c.Build()
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", c.Name, err))
		}
		if s != nil {
			sources = append(sources, s)
			sup.start(s)
		}
	}
	e.setSources(sources)
	return errors.Join(errs...)
}

// settle waits, within ShutdownTimeout, until a Settler's batches are
// durable.
func (e *Engine) settle(ctx context.Context, s agent.Source) error {
	st, ok := s.(Settler)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.shutdownTimeout())
	defer cancel()
	return st.Settle(ctx)
}

// supervisor runs each source under a context of its own, so that a reload
// can stop one and start its successor while the others run on. A source
// that fails — returns an error when it was not stopped — stops them all.
// Its sources are in the order of the engine's, which a reload keeps.
type supervisor struct {
	ctx  context.Context
	fail context.CancelFunc
	emit func(agent.Batch)
	wg   sync.WaitGroup

	mu      sync.Mutex
	errs    []error
	running []*runningSource
}

type runningSource struct {
	src    agent.Source
	cancel context.CancelFunc
	done   chan struct{}
}

func newSupervisor(ctx context.Context, fail context.CancelFunc, emit func(agent.Batch)) *supervisor {
	return &supervisor{ctx: ctx, fail: fail, emit: emit}
}

// start runs src, the last of the sources.
func (s *supervisor) start(src agent.Source) {
	r := &runningSource{src: src}
	s.running = append(s.running, r)
	s.run(r)
}

func (s *supervisor) run(r *runningSource) {
	ctx, cancel := context.WithCancel(s.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	s.wg.Go(func() {
		defer close(r.done)
		err := r.src.Run(ctx, s.emit)
		switch {
		case err == nil, ctx.Err() != nil && s.ctx.Err() == nil: // a clean stop, or stopped for a reload
			return
		case errors.Is(err, context.Canceled) && ctx.Err() != nil: // it only says it was stopped
			return
		}
		s.mu.Lock()
		s.errs = append(s.errs, fmt.Errorf("source %s: %w", r.src.Name(), err))
		s.mu.Unlock()
		s.fail()
	})
}

// stop stops the i-th source and waits until its Run has returned.
func (s *supervisor) stop(i int) {
	r := s.running[i]
	r.cancel()
	<-r.done
}

// restart runs the stopped i-th source again.
func (s *supervisor) restart(i int) { s.run(s.running[i]) }

// remove forgets the stopped i-th source.
func (s *supervisor) remove(i int) { s.running = slices.Delete(s.running, i, i+1) }

// wait waits for every source to return and says which failed.
func (s *supervisor) wait() []error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}
