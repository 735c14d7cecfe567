package selfmon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pmta-agent/pmta-agent/agent"
)

func acctPoint(domain string, count int64, at time.Time) agent.Point {
	return agent.NewPoint("pmta_acct", []agent.Tag{{Key: "type", Value: "d"}, {Key: "domain", Value: domain}},
		[]agent.Field{{Key: "count", Value: count}}, at)
}

// countSeries scrapes Latest as Prometheus does and returns the value of
// pmta_acct_count_total per domain label.
func countSeries(t *testing.T, l *Latest) map[string]float64 {
	t.Helper()
	_, fams := scrape(t, New(Config{}, noReporters, l, slog.New(slog.DiscardHandler)).Handler())
	out := map[string]float64{}
	f, ok := fams["pmta_acct_count_total"]
	if !ok {
		return out
	}
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if lp.GetName() == "domain" {
				out[lp.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestLatestCounterExpiry: a counter series not updated for 24 h leaves
// memory and /metrics; the check runs at most once a minute; a series that
// comes back starts from zero.
func TestLatestCounterExpiry(t *testing.T) {
	l := NewLatest()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }

	l.Enqueue([]agent.Point{acctPoint("old.example", 3, now), acctPoint("busy.example", 1, now)}, nil)
	now = now.Add(12 * time.Hour)
	l.Enqueue([]agent.Point{acctPoint("busy.example", 1, now)}, nil)

	// 24 h after old.example's last update, and a prune just ran.
	now = now.Add(12 * time.Hour)
	l.Enqueue([]agent.Point{acctPoint("busy.example", 1, now)}, nil)
	got := countSeries(t, l)
	if _, ok := got["old.example"]; ok {
		t.Fatalf("series not updated for 24 h still exported: %v", got)
	}
	if got["busy.example"] != 3 {
		t.Fatalf("busy.example = %v, want 3", got["busy.example"])
	}

	// busy.example is last updated now; 24 h on, an Enqueue less than a
	// minute after the previous prune leaves it, the next one drops it.
	now = now.Add(counterTTL - 30*time.Second)
	l.Enqueue(nil, nil) // prunes (a day since the last), busy.example is 30 s short
	now = now.Add(40 * time.Second)
	l.Enqueue(nil, nil) // 40 s after the last prune: none
	if _, ok := countSeries(t, l)["busy.example"]; !ok {
		t.Fatal("pruned again within a minute of the last prune")
	}
	now = now.Add(20 * time.Second)
	l.Enqueue(nil, nil)
	if got := countSeries(t, l); len(got) != 0 {
		t.Fatalf("expired series still exported: %v", got)
	}
	if len(l.counters) != 0 {
		t.Fatalf("expired series still held: %v", l.counters)
	}

	// A series that comes back starts again from zero.
	l.Enqueue([]agent.Point{acctPoint("old.example", 2, now)}, nil)
	if got := countSeries(t, l)["old.example"]; got != 2 {
		t.Fatalf("old.example after coming back = %v, want 2", got)
	}
}

// Gauges are replaced per poll and not touched by the counter expiry.
func TestLatestGaugesNotExpired(t *testing.T) {
	l := NewLatest()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	l.Enqueue([]agent.Point{agent.NewPoint("pmta_status", []agent.Tag{{Key: "server", Value: "m"}},
		[]agent.Field{{Key: "queue_rcp", Value: int64(7)}}, now)}, nil)
	now = now.Add(48 * time.Hour)
	l.Enqueue(nil, nil)
	if out, _ := scrape(t, New(Config{}, noReporters, l, slog.New(slog.DiscardHandler)).Handler()); !strings.Contains(out, `pmta_status_queue_rcp{server="m"} 7`) {
		t.Fatalf("gauge lost:\n%s", out)
	}
}

// The verdicts expire: served for their TTL after the batch that brought
// them, then not at all (no records, no verdict); a new batch brings them
// back. Other gauges stay.
func TestLatestVerdictsExpire(t *testing.T) {
	l := NewLatest()
	l.ExpireAfter("pmta_verdict", 3*time.Minute)
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	verdict := agent.NewPoint("pmta_verdict", []agent.Tag{{Key: "isp", Value: "yahoo"}, {Key: "scope", Value: "pool"}},
		[]agent.Field{{Key: "verdict", Value: int64(2)}}, now)
	status := agent.NewPoint("pmta_status", nil, []agent.Field{{Key: "queue_rcp", Value: int64(7)}}, now)
	l.Enqueue([]agent.Point{verdict, status}, nil)
	h := New(Config{}, noReporters, l, slog.New(slog.DiscardHandler)).Handler()
	const line = `pmta_verdict_verdict{isp="yahoo",scope="pool"} 2`
	now = now.Add(3 * time.Minute)
	if out, _ := scrape(t, h); !strings.Contains(out, line) {
		t.Fatalf("verdict gone within its TTL:\n%s", out)
	}
	now = now.Add(time.Second)
	out, _ := scrape(t, h)
	if strings.Contains(out, "pmta_verdict_verdict") || !strings.Contains(out, "pmta_status_queue_rcp 7") {
		t.Fatalf("after the TTL:\n%s", out)
	}
	l.Enqueue([]agent.Point{verdict}, nil)
	if out, _ := scrape(t, h); !strings.Contains(out, line) {
		t.Fatalf("a new batch did not bring the verdict back:\n%s", out)
	}
}

// Scrapes run while polls and accounting counts arrive, and two scrapes at
// once: every scrape sees whole polls (go test -race watches the rest).
func TestLatestConcurrentScrapes(t *testing.T) {
	l := NewLatest()
	h := New(Config{}, noReporters, l, slog.New(slog.DiscardHandler)).Handler()
	now := time.Unix(1_800_000_000, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			l.Enqueue(append(manyQueues(100+i, now), acctPoint("a.example", 1, now)), nil)
		}
	}()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				parser := expfmt.NewTextParser(model.LegacyValidation)
				fams, err := parser.TextToMetricFamilies(rec.Body)
				if err != nil {
					t.Errorf("unparsable /metrics: %v", err)
					return
				}
				if q, c := len(fams["pmta_queue_rcp"].GetMetric()), len(fams["pmta_queue_conn"].GetMetric()); q != c {
					t.Errorf("a scrape saw %d queues in pmta_queue_rcp and %d in pmta_queue_conn", q, c)
				}
			}
		})
	}
	wg.Wait()
	if got := countSeries(t, l)["a.example"]; got != 50 {
		t.Errorf("pmta_acct_count_total{domain=a.example} = %v, want 50", got)
	}
}
