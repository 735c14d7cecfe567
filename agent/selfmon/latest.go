package selfmon

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Latest keeps what the pipeline last produced for the polled measurements
// (pmta_status, pmta_queue, pmta_domain, pmta_vmta) as gauges, and running
// totals of the accounting counts (count and bytes of the pmta_acct view —
// per ISP, vmta, pool and source IP — and pmta_acct_diag's count; not the
// other views, whose domains would multiply the series) as counters, so that a Prometheus user can scrape
// PowerMTA through the agent instead of pushing. It is an engine.Enqueuer:
// the pipeline hands it every batch like a sink's store.
//
// A counter series not updated for counterTTL (24 h) is dropped, checked at
// most once a minute in Enqueue: the accounting tags (source IP, vmta, the
// diag patterns) multiply, and keeping every series
// ever seen would grow memory and every /metrics response for as long as the
// agent runs. A dropped series that comes back starts from zero again, which
// Prometheus reads as a counter reset. Gauges need no expiry: each poll
// replaces them.
type Latest struct {
	mu        sync.Mutex
	now       func() time.Time             // the clock; tests replace it
	gauges    map[string]map[string]sample // metric name → series key → sample
	counters  map[string]map[string]counter
	lastPrune time.Time
}

// counter is a counter series and when it was last added to.
type counter struct {
	labels  []agent.Tag
	value   float64
	updated time.Time
}

const (
	counterTTL = 24 * time.Hour
	pruneEvery = time.Minute
)

// NewLatest returns an empty Latest.
func NewLatest() *Latest {
	return &Latest{now: time.Now, gauges: map[string]map[string]sample{}, counters: map[string]map[string]counter{}}
}

var polled = map[string]bool{"pmta_status": true, "pmta_queue": true, "pmta_domain": true, "pmta_vmta": true}

// Enqueue records points; durable is called at once (nothing here needs to
// survive a restart: Prometheus handles counter resets).
func (l *Latest) Enqueue(points []agent.Point, durable func()) {
	l.mu.Lock()
	now := l.now()
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
					l.gauges[name][seriesKey(p.Tags)] = sample{labels: ownTags(p.Tags), value: v}
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
					m = map[string]counter{}
					l.counters[name] = m
				}
				k := seriesKey(p.Tags)
				c, seen := m[k]
				if !seen {
					c.labels = ownTags(p.Tags)
				}
				c.value, c.updated = c.value+v, now
				m[k] = c
			}
		}
	}
	if now.Sub(l.lastPrune) >= pruneEvery {
		l.pruneLocked(now)
	}
	l.mu.Unlock()
	if durable != nil {
		durable()
	}
}

// ownTags copies a point's tags for keeping: they may be a window into the
// pipeline's slab of a whole batch (engine.Pipeline.Process), which a kept
// slice would hold in memory for as long as the series lives.
func ownTags(tags []agent.Tag) []agent.Tag { return slices.Clone(tags) }

// pruneLocked drops the counter series not updated for counterTTL.
func (l *Latest) pruneLocked(now time.Time) {
	l.lastPrune = now
	for name, series := range l.counters {
		for k, c := range series {
			if now.Sub(c.updated) >= counterTTL {
				delete(series, k)
			}
		}
		if len(series) == 0 {
			delete(l.counters, name)
		}
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
	b = appendKind(b, l.gauges, "gauge", func(s sample) sample { return s })
	return appendKind(b, l.counters, "counter", func(c counter) sample { return sample{labels: c.labels, value: c.value} })
}

// appendKind renders the families of one kind, in name and series order,
// without the empty (absent) labels.
func appendKind[S any](b []byte, m map[string]map[string]S, typ string, toSample func(S) sample) []byte {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		series := m[n]
		keys := make([]string, 0, len(series))
		for k := range series {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		samples := make([]sample, 0, len(keys))
		for _, k := range keys {
			s := toSample(series[k])
			labels := make([]agent.Tag, 0, len(s.labels))
			for _, t := range s.labels {
				if t.Value != "" {
					labels = append(labels, t)
				}
			}
			samples = append(samples, sample{labels: labels, value: s.value})
		}
		b = appendFamily(b, n, typ, samples)
	}
	return b
}
