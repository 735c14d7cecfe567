package ratelog

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"

	"github.com/pmta-agent/pmta-agent/agent"
)

// line is what a test compares of one record.
type line struct {
	level slog.Level
	msg   string
	keys  []string
}

func lines(recs []logtest.Record) []line {
	var out []line
	for _, r := range recs {
		out = append(out, line{r.Level, r.Msg, r.Keys()})
	}
	return out
}

func TestFailureLogStateChanges(t *testing.T) {
	rec := logtest.New()
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	const repeat = 5 * time.Minute
	l := NewFailureLog(rec.Logger(), "test write", repeat, func() time.Time { return now })
	retry := &agent.SinkError{Kind: agent.Retryable, Err: errors.New("connection refused")}
	throttled := &agent.SinkError{Kind: agent.Throttled, RetryAfter: time.Second, Err: errors.New("HTTP 429")}
	failing := line{slog.LevelWarn, "test write failing", []string{"endpoint", "kind", "retry_after", "err"}}
	still := line{slog.LevelWarn, "test write still failing", []string{"endpoint", "kind", "failures", "err"}}
	recovered := line{slog.LevelInfo, "test write recovered", []string{"failures"}}
	fail := func(se *agent.SinkError) func() { return func() { l.Failed(se, "endpoint", "db:8086") } }

	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		want    []line
	}{
		{"first failure", 0, fail(retry), []line{failing}},
		{"repeats are quiet", time.Minute, func() { fail(retry)(); fail(retry)() }, nil},
		{"just before the reminder", repeat - time.Minute - time.Nanosecond, fail(retry), nil},
		{"reminder after the interval", time.Nanosecond, fail(retry), []line{still}},
		{"quiet again", time.Second, fail(retry), nil},
		{"new kind of failure", time.Second, fail(throttled), []line{failing}},
		{"recovery", time.Second, l.Succeeded, []line{recovered}},
		{"success is quiet", time.Second, l.Succeeded, nil},
		{"failing after recovery", time.Second, fail(retry), []line{failing}},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		st.do()
		got := lines(rec.Take())
		if !slices.EqualFunc(got, st.want, func(a, b line) bool {
			return a.level == b.level && a.msg == b.msg && slices.Equal(a.keys, b.keys)
		}) {
			t.Errorf("%s: logged %v, want %v", st.name, got, st.want)
		}
	}
}

func TestFailureLogCountsFailures(t *testing.T) {
	var attrs []slog.Attr
	rec := logtest.New()
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	l := NewFailureLog(rec.Logger(), "w", time.Minute, func() time.Time { return now })
	se := &agent.SinkError{Kind: agent.Retryable, Err: errors.New("down")}
	for range 7 {
		l.Failed(se)
		now = now.Add(20 * time.Second)
	}
	l.Succeeded()
	recs := rec.Records()
	attrs = recs[len(recs)-1].Attrs
	if len(attrs) != 1 || attrs[0].Key != "failures" || attrs[0].Value.Int64() != 7 {
		t.Errorf("recovery line attrs %v, want failures=7", attrs)
	}
}

// TestFailureLogLeavesCallerAttrs checks that the caller's attribute slice is
// not written to, even when it has room to grow.
func TestFailureLogLeavesCallerAttrs(t *testing.T) {
	l := NewFailureLog(logtest.New().Logger(), "w", time.Minute, time.Now)
	attrs := make([]any, 2, 8)
	attrs[0], attrs[1] = "endpoint", "c:4317"
	l.Failed(&agent.SinkError{Kind: agent.Retryable, Err: errors.New("down")}, attrs...)
	for i, v := range attrs[:cap(attrs)] {
		if i >= 2 && v != nil {
			t.Fatalf("attrs[%d] = %v: the caller's array was written to", i, v)
		}
	}
}
