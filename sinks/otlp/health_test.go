package otlp

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestHealthLogsStateChangesOnly(t *testing.T) {
	logs := &syncLog{}
	now := t0
	h := newHealth(slog.New(slog.NewTextHandler(logs, nil)), func() time.Time { return now })
	retry := &agent.SinkError{Kind: agent.Retryable, Err: errors.New("refused")}
	for range 50 {
		h.failed(retry, "c:4317")
		now = now.Add(time.Second)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Fatalf("%d lines for 50 failures in 50s:\n%s", n, logs)
	}
	h.failed(&agent.SinkError{Kind: agent.Throttled, Err: errors.New("slow")}, "c:4317")
	now = now.Add(failingRepeat)
	h.failed(retry, "c:4317")
	now = now.Add(failingRepeat)
	h.failed(retry, "c:4317")
	h.succeeded()
	h.succeeded()
	out := logs.String()
	for _, want := range []string{"otlp export failing", "kind=throttled", "still failing", "failures=53", "recovered"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 5 {
		t.Errorf("%d lines, want 5:\n%s", n, out)
	}

	before := strings.Count(logs.String(), "\n")
	for range 10 {
		h.notice("rejected", "n", 1)
	}
	now = now.Add(noticeRepeat)
	h.notice("rejected", "n", 1)
	if n := strings.Count(logs.String(), "\n") - before; n != 2 {
		t.Errorf("%d notice lines, want 2", n)
	}
}
