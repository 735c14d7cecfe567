package selfmon

import (
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Latest keeps what the pipeline last produced for the polled measurements
// (pmta_status, pmta_queue, pmta_domain, pmta_vmta; /metrics shows them as
// gauges, and PowerMTA's own running totals as counters), and running
// totals of the accounting counts (count and bytes of the pmta_acct view —
// per ISP, vmta, pool and source IP — and pmta_acct_diag's count; not the
// other views, whose domains would multiply the series), so that a
// Prometheus user can scrape PowerMTA through the agent instead of pushing
// (latestCollector; pmtaFamilies names them). It is an engine.Enqueuer: the
// pipeline hands it every batch like a sink's store.
//
// A counter series not updated for counterTTL (24 h) is dropped, checked at
// most once a minute in Enqueue: the accounting tags (source IP, vmta, the
// diag patterns) multiply, and keeping every series
// ever seen would grow memory and every /metrics response for as long as the
// agent runs. A dropped series that comes back starts from zero again, which
// Prometheus reads as a counter reset. Gauges need no expiry: each poll
// replaces them.
type Latest struct {
	mu  sync.Mutex
	now func() time.Time // the clock; tests replace it
	// gauges holds each family's series, sorted as the registry sorts
	// them (compareLabels), which saves sorting them again at every scrape.
	// A poll replaces a family's slice with a new one and never changes a
	// slice it handed over: a scrape reads the slices it found without
	// holding mu.
	gauges    map[pmtaField][]sample
	counters  map[pmtaField]map[string]counter
	lastPrune time.Time
	// ttl, per measurement, is how long its gauges are served after the
	// batch that last replaced them (none: until the next one); replaced
	// says when that was.
	ttl      map[string]time.Duration
	replaced map[pmtaField]time.Time
}

// sample is a series and its value. The labels are made once per point,
// when it arrives, and shared by its fields: a scrape hands them to the
// registry as they are.
type sample struct {
	labels []*dto.LabelPair
	value  float64
}

// counter is a counter series and when it was last added to.
type counter struct {
	labels  []*dto.LabelPair
	value   float64
	updated time.Time
}

const (
	counterTTL = 24 * time.Hour
	pruneEvery = time.Minute
)

// NewLatest returns an empty Latest.
func NewLatest() *Latest {
	return &Latest{now: time.Now, gauges: map[pmtaField][]sample{}, counters: map[pmtaField]map[string]counter{},
		ttl: map[string]time.Duration{}, replaced: map[pmtaField]time.Time{}}
}

// ExpireAfter stops serving a measurement's gauges d after the batch that
// last brought them: the verdicts, which come only while records do — when
// PowerMTA logs nothing more, the last verdict is no longer true, and an
// alert on it must resolve rather than fire on.
func (l *Latest) ExpireAfter(measurement string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ttl[measurement] = d
}

// polled are the measurements whose last batch replaces the one before:
// PowerMTA's polled documents, and the verdicts of the last window.
var polled = map[string]bool{"pmta_status": true, "pmta_queue": true, "pmta_domain": true, "pmta_vmta": true, "pmta_verdict": true}

// Enqueue records points; durable is called at once (nothing here needs to
// survive a restart: Prometheus handles counter resets).
func (l *Latest) Enqueue(points []agent.Point, durable func()) {
	series := sortedSeries(points)
	l.mu.Lock()
	now := l.now()
	// A poll replaces the previous one's series of each field it has, so
	// queues that emptied disappear instead of going stale.
	replaced := map[pmtaField]bool{}
	for _, s := range series {
		for _, f := range s.p.Fields {
			pf := pmtaField{s.p.Measurement, f.Key}
			if !replaced[pf] {
				replaced[pf] = true
				l.gauges[pf] = nil
				l.replaced[pf] = now
			}
			v, ok := agent.FieldNumber(f.Value)
			if !ok {
				continue
			}
			fam := l.gauges[pf]
			if n := len(fam); n > 0 && compareLabels(fam[n-1].labels, s.labels) == 0 {
				fam[n-1].value = v // the same series again: the later point wins
				continue
			}
			l.gauges[pf] = append(fam, sample{labels: s.labels, value: v})
		}
	}
	for i := range points {
		if p := &points[i]; p.Measurement == "pmta_acct" || p.Measurement == "pmta_acct_diag" {
			var (
				labels []*dto.LabelPair
				k      string
			)
			for _, f := range p.Fields {
				if f.Key != "count" && f.Key != "bytes" {
					continue
				}
				v, ok := agent.FieldNumber(f.Value)
				if !ok {
					continue
				}
				if k == "" {
					labels = labelPairs(p.Tags)
					k = seriesKey(labels)
				}
				pf := pmtaField{p.Measurement, f.Key}
				m := l.counters[pf]
				if m == nil {
					m = map[string]counter{}
					l.counters[pf] = m
				}
				c, seen := m[k]
				if !seen {
					c.labels = labels
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

// polledSeries is a point of a polled measurement and its labels.
type polledSeries struct {
	p      *agent.Point
	labels []*dto.LabelPair
}

// sortedSeries returns the points of the polled measurements with their
// labels, by measurement and then in the order the registry sorts series;
// equal ones keep their order.
func sortedSeries(points []agent.Point) []polledSeries {
	var series []polledSeries
	for i := range points {
		if p := &points[i]; polled[p.Measurement] {
			series = append(series, polledSeries{p: p, labels: labelPairs(p.Tags)})
		}
	}
	slices.SortStableFunc(series, func(a, b polledSeries) int {
		if c := strings.Compare(a.p.Measurement, b.p.Measurement); c != 0 {
			return c
		}
		return compareLabels(a.labels, b.labels)
	})
	return series
}

// compareLabels orders label sets as client_golang's registry orders the
// series of a family — fewer labels first, then by the values in name
// order — and then by the names: 0 only for the same labels.
func compareLabels(a, b []*dto.LabelPair) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	for i := range a {
		if c := strings.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	for i := range a {
		if c := strings.Compare(a[i].GetName(), b[i].GetName()); c != 0 {
			return c
		}
	}
	return 0
}

// labelPairs makes a point's tags the labels of its series: without the
// empty ones (no label at all, to Prometheus), with names made of letters,
// digits and underscores, values made safe (valid UTF-8, no control
// characters: the pipeline has done so already, but Latest does not rely
// on its caller) and sorted by name, as the registry wants them. They are a
// copy: the tags may be a window into the pipeline's slab of a whole batch
// (engine.Pipeline.Process), which a kept slice would hold in memory for as
// long as the series lives. Three allocations, whatever the number of tags.
func labelPairs(tags []agent.Tag) []*dto.LabelPair {
	n := 0
	for _, t := range tags {
		if t.Value != "" {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	pairs, strs, out := make([]dto.LabelPair, n), make([]string, 2*n), make([]*dto.LabelPair, 0, n)
	for _, t := range tags {
		if t.Value == "" {
			continue
		}
		i := len(out)
		strs[2*i], strs[2*i+1] = sanitize(t.Key), agent.SafeTag(t.Value)
		pairs[i].Name, pairs[i].Value = &strs[2*i], &strs[2*i+1]
		out = append(out, &pairs[i])
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

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

// seriesKey identifies a series by its labels: two points whose tags only
// SafeTag told apart are one series.
func seriesKey(labels []*dto.LabelPair) string {
	var sb strings.Builder
	for _, l := range labels {
		sb.WriteString(l.GetName())
		sb.WriteByte(0)
		sb.WriteString(l.GetValue())
		sb.WriteByte(0)
	}
	return sb.String()
}

// snapshot returns the kept series: the gauge slices as they are (Enqueue
// replaces them, never changes them) and a copy of the counters, which
// Enqueue adds to in place.
func (l *Latest) snapshot() (gauges, counters map[pmtaField][]sample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gauges = make(map[pmtaField][]sample, len(l.gauges))
	now := l.now()
	for f, m := range l.gauges {
		if ttl, ok := l.ttl[f.measurement]; ok && now.Sub(l.replaced[f]) > ttl {
			continue
		}
		gauges[f] = m
	}
	counters = make(map[pmtaField][]sample, len(l.counters))
	for f, m := range l.counters {
		s := make([]sample, 0, len(m))
		for _, c := range m {
			s = append(s, sample{labels: c.labels, value: c.value})
		}
		counters[f] = s
	}
	return gauges, counters
}
