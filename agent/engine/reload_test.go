package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// namedSource emits n points at the start of each Run, then waits to be
// stopped; it counts its runs and closes, and may refuse to settle.
type namedSource struct {
	name      string
	n         int
	runs      atomic.Int32
	closed    atomic.Int32
	settleErr error
}

func (s *namedSource) Name() string { return s.name }
func (s *namedSource) Run(ctx context.Context, emit func(agent.Batch)) error {
	s.runs.Add(1)
	emit(agent.Batch{Source: s.name, Points: pts(s.n)})
	<-ctx.Done()
	return ctx.Err() // stopped: an error the engine must not take for a failure
}
func (s *namedSource) Close() error { s.closed.Add(1); return nil }
func (s *namedSource) Settle(context.Context) error {
	return s.settleErr
}

// A reload replaces a source and the pipeline's tags while the deliveries
// run on: what the sink held before is written, the old source is stopped
// and closed (not taken for failed), the new one runs, and the points after
// carry the new tags.
func TestReloadReplacesSourcesAndKeepsTheQueue(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	s := &fakeSink{write: func(int, []agent.Point) error {
		<-release // the sink is slow: points wait in the queue across the reload
		return nil
	}}
	old := &namedSource{name: "a", n: 5}
	e, err := New(Config{ShutdownTimeout: 5 * time.Second, Pipeline: PipelineConfig{Server: "s1", Tags: map[string]string{"env": "before"}}},
		[]agent.Source{old}, []Output{{Sink: s, Buffer: MemoryBuffer(), BatchSize: 100}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	waitFor(t, "the first batch queued", func() bool { return e.Deliveries()[0].Counts().Enqueued == 5 })

	next := &namedSource{name: "a", n: 3}
	added := &namedSource{name: "b", n: 2}
	err = e.Reload(ctx, Reload{
		Pipeline: &PipelineConfig{Server: "s1", Tags: map[string]string{"env": "after"}},
		Sources: []SourceChange{
			{Name: "a", Build: func() (agent.Source, error) {
				if old.closed.Load() != 1 {
					t.Error("the successor was built before the old source was closed")
				}
				return next, nil
			}},
			{Name: "b", Build: func() (agent.Source, error) { return added, nil }},
		},
	})
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	once.Do(func() { close(release) })
	waitFor(t, "all 10 points written", func() bool { return e.Deliveries()[0].Counts().Written == 10 })
	if got := e.Sources(); len(got) != 2 || got[0] != agent.Source(next) || got[1] != agent.Source(added) {
		t.Errorf("sources after the reload: %v", got)
	}
	env := map[string]int{}
	s.mu.Lock()
	for _, p := range s.got {
		v, _ := p.TagValue("env")
		env[v]++
	}
	s.mu.Unlock()
	if env["before"] != 5 || env["after"] != 5 {
		t.Errorf("env tags %v, want 5 before and 5 after", env)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v (a source stopped for a reload is no failure)", err)
	}
	if c := e.Deliveries()[0].Counts(); c.Enqueued != 10 || c.Written != 10 || c.Queued != 0 {
		t.Errorf("counts %+v", c)
	}
}

// A source that cannot settle (its batches are not yet durable) runs on as
// it was, its successor never built; a successor that cannot be built
// leaves what Build returned in its stead, and removing a source works.
func TestReloadKeepsWhatCannotChange(t *testing.T) {
	s := &fakeSink{}
	stuck := &namedSource{name: "acct", n: 1, settleErr: errors.New("2 batches are not yet durable")}
	api := &namedSource{name: "api", n: 1}
	gone := &namedSource{name: "gone", n: 1}
	e, err := New(Config{ShutdownTimeout: time.Second}, []agent.Source{stuck, api, gone},
		[]Output{{Sink: s, Buffer: MemoryBuffer(), BatchSize: 100}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	waitFor(t, "the sources to run", func() bool { return stuck.runs.Load() == 1 && api.runs.Load() == 1 && gone.runs.Load() == 1 })

	fallback := &namedSource{name: "api", n: 1}
	built := false
	err = e.Reload(ctx, Reload{Sources: []SourceChange{
		{Name: "acct", Build: func() (agent.Source, error) { built = true; return nil, nil }},
		{Name: "api", Build: func() (agent.Source, error) { return fallback, errors.New("ca_file: no such file") }},
		{Name: "gone"},
	}})
	if err == nil || !strings.Contains(err.Error(), "source acct runs on as it was: 2 batches") ||
		!strings.Contains(err.Error(), "source api: ca_file: no such file") {
		t.Fatalf("Reload: %v", err)
	}
	if built {
		t.Error("the successor of a source that did not settle was built")
	}
	waitFor(t, "the unsettled source to run again", func() bool { return stuck.runs.Load() == 2 })
	if stuck.closed.Load() != 0 || api.closed.Load() != 1 || gone.closed.Load() != 1 {
		t.Errorf("closed: acct %d, api %d, gone %d; want 0, 1, 1", stuck.closed.Load(), api.closed.Load(), gone.closed.Load())
	}
	if got := e.Sources(); len(got) != 2 || got[0] != agent.Source(stuck) || got[1] != agent.Source(fallback) {
		t.Errorf("sources after the reload: %v", got)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Reload waits for Run; without one it gives up with its context.
func TestReloadWithoutRun(t *testing.T) {
	e, err := New(Config{}, nil, nil, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.Reload(ctx, Reload{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reload without Run: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
