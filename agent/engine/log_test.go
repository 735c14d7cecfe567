package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/agent/queue"
)

// endpointSink is a fakeSink that says where it writes.
type endpointSink struct{ *fakeSink }

func (endpointSink) Endpoint() string { return "http://influx:8086" }

// A failing sink is logged once, by the delivery loop, as a state change
// with where the sink writes: failing, a reminder after logEvery with the
// number of failures, recovered. Refusals for good are logged once, then
// at most every logEvery with the points since.
func TestDeliveryLogsStateChanges(t *testing.T) {
	down := true
	bad := false
	s := endpointSink{&fakeSink{write: func(_ int, p []agent.Point) error {
		switch {
		case bad:
			return &agent.SinkError{Kind: agent.Permanent, Rejected: len(p), Err: errors.New("HTTP 400: unable to parse")}
		case down:
			return &agent.SinkError{Kind: agent.Retryable, Err: errors.New("connection refused")}
		}
		return nil
	}}}
	rec := logtest.New()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	d := NewDelivery(s, queue.NewMemory(1000), DeliveryConfig{BatchSize: 10}, rec.Logger())
	d.now = func() time.Time { return now }
	ctx := context.Background()
	d.Enqueue(pts(5), nil)
	for range 20 {
		d.FlushOnce(ctx)
		now = now.Add(time.Second)
	}
	now = now.Add(logEvery)
	d.FlushOnce(ctx)
	down = false
	d.FlushOnce(ctx)
	bad = true
	for range 3 {
		d.Enqueue(pts(2), nil)
		d.FlushOnce(ctx)
	}
	var got []string
	for _, r := range rec.Records() {
		if r.Level < slog.LevelInfo {
			continue // the debug line of each write
		}
		got = append(got, r.Msg)
		if strings.HasPrefix(r.Msg, "sink fake write") && !strings.Contains(r.String(), "endpoint=http://influx:8086") {
			t.Errorf("no endpoint in %q", r.String())
		}
	}
	want := []string{"sink fake write failing", "sink fake write still failing", "sink fake write recovered",
		"sink refused points for good; the other points go on"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logged %q\nwant   %q", got, want)
	}
}
