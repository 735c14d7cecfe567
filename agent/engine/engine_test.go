package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// gatherSource is a Source that can also gather one round on demand.
type gatherSource struct {
	sourceFunc
	points []agent.Point
	err    error
}

func (g gatherSource) Gather(context.Context) (agent.Batch, error) {
	return agent.Batch{Points: g.points}, g.err
}

// Feed is the backfill mode: it holds the producer back while the sink is
// behind, and returns once the sink took everything.
func TestEngineFeed(t *testing.T) {
	s := &fakeSink{write: func(int, []agent.Point) error {
		time.Sleep(time.Millisecond) // a sink slower than the producer
		return nil
	}}
	e, err := New(Config{ShutdownTimeout: 5 * time.Second}, nil, []Output{{Sink: s, Buffer: MemoryBuffer(), BatchSize: 10}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	most := 0
	err = e.Feed(context.Background(), 50, func(emit func(agent.Batch)) error {
		for range 40 {
			emit(agent.Batch{Points: pts(10)})
			most = max(most, e.Deliveries()[0].Queued())
		}
		return nil
	})
	if err != nil || len(s.got) != 400 || e.Deliveries()[0].Queued() != 0 {
		t.Fatalf("Feed: %v; wrote %d of 400", err, len(s.got))
	}
	if most > 60 {
		t.Errorf("up to %d points waited; the producer was not held back at 50", most)
	}
}

// Gather is the once mode: the gatherers' points as the pipeline makes them.
func TestEngineGather(t *testing.T) {
	src := gatherSource{points: pts(3), err: errors.New("status: HTTP 500")}
	e, err := New(Config{Pipeline: PipelineConfig{Server: "mta01"}}, []agent.Source{src}, nil, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	got, err := e.Gather(context.Background())
	if err == nil || len(got) != 3 {
		t.Fatalf("Gather: %d points, %v", len(got), err)
	}
	if v, _ := got[0].TagValue("server"); v != "mta01" {
		t.Errorf("server tag %q", v)
	}
}

// The engine owns the disk queues it opens: Close releases their locks, so
// that another engine can open the same state directory.
func TestEngineCloseReleasesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Engine, error) {
		return New(Config{StateDir: dir}, nil, []Output{{Sink: &fakeSink{}, Buffer: DiskBuffer()}}, nil, discard())
	}
	e, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); err == nil {
		t.Fatal("a second engine opened a locked queue")
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2, err := open()
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	_ = e2.Close(context.Background())
}
