package selfmon

import (
	"slices"
	"strings"
	"sync"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Latest keeps what the pipeline last produced for the polled measurements
// (pmta_status, pmta_queue, pmta_domain, pmta_vmta) as gauges, and running
// totals of the accounting counts (pmta_acct count and bytes,
// pmta_acct_diag count) as counters, so that a Prometheus user can scrape
// PowerMTA through the agent instead of pushing. It is an agent.Enqueuer:
// the pipeline hands it every batch like a sink's store.
type Latest struct {
	mu       sync.Mutex
	gauges   map[string]map[string]sample // metric name → series key → sample
	counters map[string]map[string]sample
}

// NewLatest returns an empty Latest.
func NewLatest() *Latest {
	return &Latest{gauges: map[string]map[string]sample{}, counters: map[string]map[string]sample{}}
}

var polled = map[string]bool{"pmta_status": true, "pmta_queue": true, "pmta_domain": true, "pmta_vmta": true}

// Enqueue records points; durable is called at once (nothing here needs to
// survive a restart: Prometheus handles counter resets).
func (l *Latest) Enqueue(points []agent.Point, durable func()) {
	l.mu.Lock()
	replaced := map[string]bool{}
	for i := range points {
		p := &points[i]
		switch {
		case polled[p.Measurement]:
			// A poll replaces the previous one's series of this measurement,
			// so queues that emptied disappear instead of going stale.
			for _, f := range p.Fields {
				name := p.Measurement + "_" + sanitize(f.Key)
				if !replaced[name] {
					replaced[name] = true
					l.gauges[name] = map[string]sample{}
				}
				if v, ok := agent.FieldNumber(f.Value); ok {
					l.gauges[name][seriesKey(p.Tags)] = sample{labels: p.Tags, value: v}
				}
			}
		case p.Measurement == "pmta_acct" || p.Measurement == "pmta_acct_diag":
			for _, f := range p.Fields {
				if f.Key != "count" && f.Key != "bytes" {
					continue
				}
				v, ok := agent.FieldNumber(f.Value)
				if !ok {
					continue
				}
				name := p.Measurement + "_" + f.Key + "_total"
				m := l.counters[name]
				if m == nil {
					m = map[string]sample{}
					l.counters[name] = m
				}
				k := seriesKey(p.Tags)
				s := m[k]
				s.labels, s.value = p.Tags, s.value+v
				m[k] = s
			}
		}
	}
	l.mu.Unlock()
	if durable != nil {
		durable()
	}
}

func seriesKey(tags []agent.Tag) string {
	var sb strings.Builder
	for _, t := range tags {
		sb.WriteString(t.Key)
		sb.WriteByte(0)
		sb.WriteString(t.Value)
		sb.WriteByte(0)
	}
	return sb.String()
}

// AppendMetrics renders the kept values in the Prometheus text format.
func (l *Latest) AppendMetrics(b []byte) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, kind := range []struct {
		m   map[string]map[string]sample
		typ string
	}{{l.gauges, "gauge"}, {l.counters, "counter"}} {
		names := make([]string, 0, len(kind.m))
		for n := range kind.m {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			series := kind.m[n]
			keys := make([]string, 0, len(series))
			for k := range series {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			samples := make([]sample, 0, len(keys))
			for _, k := range keys {
				s := series[k]
				labels := make([]agent.Tag, 0, len(s.labels))
				for _, t := range s.labels {
					if t.Value != "" {
						labels = append(labels, t)
					}
				}
				samples = append(samples, sample{labels: labels, value: s.value})
			}
			b = appendFamily(b, n, kind.typ, samples)
		}
	}
	return b
}
