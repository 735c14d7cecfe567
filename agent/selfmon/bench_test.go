package selfmon

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// manyQueues is a poll of a large PowerMTA: n queues (each a pmta_queue
// point with five fields), n/10 domains and 50 vmtas.
func manyQueues(n int, at time.Time) []agent.Point {
	pts := []agent.Point{agent.NewPoint("pmta_status", []agent.Tag{{Key: "server", Value: "mta01"}},
		[]agent.Field{{Key: "queue_rcp", Value: int64(84312)}, {Key: "queue_kb", Value: 4188302.6}, {Key: "out_rcp_total", Value: int64(18342211)}}, at)}
	for i := range n {
		d := fmt.Sprintf("d%05d.example", i)
		pts = append(pts, agent.NewPoint("pmta_queue",
			[]agent.Tag{{Key: "domain", Value: d}, {Key: "isp", Value: "other"}, {Key: "server", Value: "mta01"}, {Key: "vmta", Value: fmt.Sprintf("vmta-%02d", i%50)}},
			[]agent.Field{{Key: "rcp", Value: int64(i)}, {Key: "kb", Value: float64(i) * 1.5}, {Key: "conn", Value: int64(i % 20)}, {Key: "paused", Value: int64(0)}, {Key: "backoff", Value: int64(i % 2)}}, at))
		if i%10 == 0 {
			pts = append(pts, agent.NewPoint("pmta_domain",
				[]agent.Tag{{Key: "domain", Value: d}, {Key: "isp", Value: "other"}, {Key: "server", Value: "mta01"}},
				[]agent.Field{{Key: "rcp", Value: int64(i)}, {Key: "kb", Value: float64(i) * 1.5}, {Key: "conn", Value: int64(i % 20)}}, at))
		}
	}
	for i := range 50 {
		pts = append(pts, agent.NewPoint("pmta_vmta", []agent.Tag{{Key: "server", Value: "mta01"}, {Key: "vmta", Value: fmt.Sprintf("vmta-%02d", i)}},
			[]agent.Field{{Key: "rcp", Value: int64(i)}, {Key: "kb", Value: float64(i)}, {Key: "conn", Value: int64(i)}, {Key: "domains", Value: int64(i)}}, at))
	}
	return pts
}

// BenchmarkMetricsManyQueues is one scrape of /metrics with
// listen.pmta_metrics on and 10,000 queues (50,000 pmta_queue samples).
func BenchmarkMetricsManyQueues(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	latest := NewLatest()
	latest.Enqueue(manyQueues(10_000, now), nil)
	reps := []agent.StatsReporter{
		reporter{"api", []agent.Field{{Key: "polls", Value: int64(7)}, {Key: "up", Value: int64(1)}, {Key: "last_duration_s", Value: 0.25}}},
		reporter{"sink_influx", []agent.Field{{Key: "queued_points", Value: int64(12)}, {Key: "errors", Value: int64(3)}}},
	}
	h := New(Config{Version: "bench"}, func() []agent.StatsReporter { return reps }, latest, slog.New(slog.DiscardHandler)).Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkLatestEnqueue is what a poll of 10,000 queues costs the
// pipeline's tap that keeps them for /metrics.
func BenchmarkLatestEnqueue(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	pts := manyQueues(10_000, now)
	latest := NewLatest()
	b.ReportAllocs()
	for b.Loop() {
		latest.Enqueue(pts, nil)
	}
}
