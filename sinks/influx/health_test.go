package influx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// logRecorder is a slog.Handler that keeps each record's message and attrs.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// take returns the messages logged since the last call.
func (l *logRecorder) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var msgs []string
	for _, r := range l.records {
		msgs = append(msgs, r.Message)
	}
	l.records = nil
	return msgs
}

func (l *logRecorder) lastAttr(key string) slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v slog.Value
	if n := len(l.records); n > 0 {
		l.records[n-1].Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value
			}
			return true
		})
	}
	return v
}

func TestHealthLogsStateChangesOnly(t *testing.T) {
	rec := &logRecorder{}
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	h := newHealth(slog.New(rec), func() time.Time { return now })
	retry := &agent.SinkError{Kind: agent.Retryable, Err: errors.New("connection refused")}
	throttled := &agent.SinkError{Kind: agent.Throttled, RetryAfter: time.Second, Err: errors.New("HTTP 429")}

	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		want    []string
	}{
		{"first failure", 0, func() { h.failed(retry) }, []string{"influx write failing"}},
		{"repeats are quiet", time.Minute, func() { h.failed(retry); h.failed(retry) }, nil},
		{"reminder after the interval", failingRepeat, func() { h.failed(retry) }, []string{"influx write still failing"}},
		{"quiet again", time.Second, func() { h.failed(retry) }, nil},
		{"new kind of failure", time.Second, func() { h.failed(throttled) }, []string{"influx write failing"}},
		{"recovery", time.Second, h.succeeded, []string{"influx write recovered"}},
		{"success is quiet", time.Second, h.succeeded, nil},
		{"failing after recovery", time.Second, func() { h.failed(retry) }, []string{"influx write failing"}},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		st.do()
		if got := rec.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: logged %q, want %q", st.name, got, st.want)
		}
	}
}

func TestHealthRejectionsRateLimited(t *testing.T) {
	rec := &logRecorder{}
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	h := newHealth(slog.New(rec), func() time.Time { return now })
	perm := &agent.SinkError{Kind: agent.Permanent, Err: errors.New("field type conflict")}

	h.rejected(perm)
	if got := rec.take(); len(got) != 1 {
		t.Fatalf("first rejection logged %q, want one line", got)
	}
	now = now.Add(10 * time.Second)
	h.rejected(perm)
	h.rejected(perm)
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("rejections within the interval logged %q", got)
	}
	now = now.Add(rejectedRepeat)
	h.rejected(perm)
	if v := rec.lastAttr("refusals"); v.Int64() != 3 {
		t.Errorf("refusals = %v, want 3 (2 suppressed, then 1)", v)
	}
	if got := rec.take(); len(got) != 1 {
		t.Fatalf("rejection after the interval logged %q, want one line", got)
	}
	now = now.Add(rejectedRepeat)
	h.rejected(perm)
	if v := rec.lastAttr("refusals"); v.Int64() != 1 {
		t.Errorf("refusals = %v, want 1 (the count restarts after each line)", v)
	}
}

// TestSinkFailuresLogOnce runs the logging through real writes.
func TestSinkFailuresLogOnce(t *testing.T) {
	srv := newServer(t, answer(http.StatusServiceUnavailable, ""), answer(http.StatusServiceUnavailable, ""),
		answer(http.StatusServiceUnavailable, ""), noContent())
	rec := &logRecorder{}
	s, err := New(Config{URL: srv.URL, Bucket: "b"}, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec.take() // the start-up line
	for range 3 {
		_ = s.Write(context.Background(), testPoints(1))
	}
	// An empty write asks the server nothing, so it is no sign of recovery.
	if err := s.Write(context.Background(), nil); err != nil {
		t.Fatalf("empty write: %v", err)
	}
	if err := s.Write(context.Background(), testPoints(1)); err != nil {
		t.Fatalf("fourth write: %v", err)
	}
	want := []string{"influx write failing", "influx write recovered"}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}
