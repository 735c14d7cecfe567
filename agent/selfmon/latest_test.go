package selfmon

import (
	"strings"
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

// countSeries parses Latest's output as Prometheus does and returns the
// value of pmta_acct_count_total per domain label.
func countSeries(t *testing.T, l *Latest) map[string]float64 {
	t.Helper()
	text := string(l.AppendMetrics(nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("unparsable output: %v\n%s", err, text)
	}
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
	if out := string(l.AppendMetrics(nil)); !strings.Contains(out, `pmta_status_queue_rcp{server="m"} 7`) {
		t.Fatalf("gauge lost:\n%s", out)
	}
}
