package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

type statSource struct{ namedSource }

func (s *statSource) Component() string { return s.name }
func (s *statSource) Stats() []agent.Field {
	return []agent.Field{{Key: "runs", Value: int64(s.runs.Load())}}
}

// Reporters and SelfPoints read by /metrics while reloads replace the
// sources in a tight loop, and a stop in the middle of it: no race, no hang.
func TestAdversarialReloadStormWithReaders(t *testing.T) {
	e, err := New(Config{ShutdownTimeout: time.Second, SelfInterval: 5 * time.Millisecond},
		[]agent.Source{&statSource{namedSource{name: "a", n: 1}}},
		[]Output{{Sink: &fakeSink{write: func(int, []agent.Point) error { return nil }}, Buffer: MemoryBuffer(), BatchSize: 100}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, r := range e.Reporters() {
					_ = r.Stats()
				}
				_ = e.SelfPoints(time.Now())
				_ = e.Sources()
			}
		})
	}
	var rwg sync.WaitGroup
	for i := range 200 {
		rwg.Go(func() {
			_ = e.Reload(ctx, Reload{
				Pipeline: &PipelineConfig{Server: "s", Tags: map[string]string{"i": "x"}},
				Sources: []SourceChange{{Name: "a", Build: func() (agent.Source, error) {
					return &statSource{namedSource{name: "a", n: 1}}, nil
				}}},
			})
		})
		if i == 150 {
			cancel()
		}
	}
	done := make(chan struct{})
	go func() { rwg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Reload calls hang after the stop")
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run does not return")
	}
	close(stop)
	wg.Wait()
	if err := e.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	// A Reload after Run returned, with a live context: it blocks until
	// the context ends.
	rctx, rcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer rcancel()
	start := time.Now()
	err = e.Reload(rctx, Reload{})
	t.Logf("Reload after Run returned: %v after %s", err, time.Since(start).Round(time.Millisecond))
}
