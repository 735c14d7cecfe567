package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
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
	err = e.Feed(context.Background(), FeedOptions{High: 50, Stall: time.Minute}, func(_ context.Context, emit func(agent.Batch)) error {
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

// A sink that keeps failing (a backfill into a bucket that does not exist)
// must not hold Feed for ever: once it has taken nothing for Stall, the
// producer is stopped and Feed says which sink stalled; what it holds is
// left queued, and counted so.
func TestEngineFeedGivesUpOnAStalledSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSink{write: func(int, []agent.Point) error {
			return &agent.SinkError{Kind: agent.Retryable, Err: errors.New("HTTP 404: database not found")}
		}}
		e, err := New(Config{ShutdownTimeout: 10 * time.Second}, nil, []Output{{Sink: s, Buffer: MemoryBuffer(), BatchSize: 10}}, nil, discard())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		start := time.Now()
		var emitted int
		err = e.Feed(context.Background(), FeedOptions{High: 50, Stall: 5 * time.Minute},
			func(ctx context.Context, emit func(agent.Batch)) error {
				for ctx.Err() == nil {
					emit(agent.Batch{Points: pts(10)})
					emitted += 10
				}
				return ctx.Err()
			})
		if err == nil || !strings.Contains(err.Error(), "sink fake took none of its") {
			t.Fatalf("Feed: %v, want the stall named", err)
		}
		// The stall, then the last attempt within ShutdownTimeout.
		if took := time.Since(start); took < 5*time.Minute || took > 5*time.Minute+15*time.Second {
			t.Errorf("Feed gave up after %s, want 5m and the shutdown timeout", took)
		}
		if c := e.Deliveries()[0].Counts(); c.Queued != int64(emitted) || c.Written != 0 {
			t.Errorf("counts %+v after emitting %d", c, emitted)
		}
	})
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

// hangingSink's Close waits until released: a server that never answers.
type hangingSink struct {
	fakeSink
	release chan struct{}
}

func (h *hangingSink) Close() error { <-h.release; return nil }

// closeRecorder is a source that records when it was closed.
type closeRecorder struct {
	sourceFunc
	closed chan struct{}
}

func (c closeRecorder) Close() error { close(c.closed); return nil }

// A sink whose Close hangs must not hold anything local: the buffers and
// the sources are closed before the sinks, and Close gives up on the sinks
// at the shutdown deadline.
func TestEngineCloseDoesNotWaitForSinksToReleaseLocalState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		sink := &hangingSink{release: make(chan struct{})}
		defer close(sink.release)
		src := closeRecorder{closed: make(chan struct{})}
		e, err := New(Config{StateDir: dir, ShutdownTimeout: 10 * time.Second}, []agent.Source{src},
			[]Output{{Sink: sink, Buffer: DiskBuffer()}}, nil, discard())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = e.Close(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with a hanging sink: %v, want the deadline", err)
		}
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("Close took %s, want the shutdown timeout", took)
		}
		select {
		case <-src.closed:
		default:
			t.Error("the source was not closed")
		}
		e2, err := New(Config{StateDir: dir}, nil, []Output{{Sink: &fakeSink{}, Buffer: DiskBuffer()}}, nil, discard())
		if err != nil {
			t.Fatalf("the queue stayed locked behind a hanging sink: %v", err)
		}
		_ = e2.Close(context.Background())
	})
}
