package selfmon

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// latestCollector exposes Latest's values at every scrape, each field as
// pmtaFamilies describes it and labelled with its point's tags.
//
// It writes its samples itself (seriesMetric) rather than through
// prometheus.NewConstMetric, which would make every sample's label pairs
// anew at every scrape: with 10,000 queues that is 50,000 samples and a
// million allocations a scrape. Latest makes the label pairs once per
// point, and the registry still checks every sample (label names, valid
// UTF-8, no two series the same) and leaves out, and reports, one that
// fails.
//
// It is an unchecked collector (Describe sends nothing): which families
// there are is known when it collects. So a family's Desc holds only its
// name and help; the labels are the sample's own, and may differ between
// the series of a family (a dialect or a fold leaves some out).
type latestCollector struct {
	latest *Latest
	fb     *fallbacks
	mu     sync.Mutex
	descs  map[pmtaField]*prometheus.Desc
}

func newLatestCollector(l *Latest, fb *fallbacks) *latestCollector {
	return &latestCollector{latest: l, fb: fb, descs: make(map[pmtaField]*prometheus.Desc, len(pmtaFamilies))}
}

// Describe implements prometheus.Collector.
func (c *latestCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *latestCollector) Collect(ch chan<- prometheus.Metric) {
	gauges, counters := c.latest.snapshot()
	for f, series := range gauges {
		c.collectFamily(ch, f, false, series)
	}
	for f, series := range counters {
		c.collectFamily(ch, f, true, series)
	}
}

// collectFamily sends the samples of a family. They live in one slice,
// made for this scrape: the registry reads them until the response is
// written, and a concurrent scrape has its own.
func (c *latestCollector) collectFamily(ch chan<- prometheus.Metric, f pmtaField, counter bool, series []sample) {
	fam, desc := c.family(f, counter)
	scale := fam.scale
	if scale == 0 {
		scale = 1
	}
	ms := make([]seriesMetric, len(series))
	for i, s := range series {
		m := &ms[i]
		m.desc, m.labels, m.value = desc, s.labels, s.value*scale
		if fam.counter {
			m.counter.Value = &m.value
		} else {
			m.gauge.Value = &m.value
		}
		ch <- m
	}
}

// family returns how f is exposed, and its Desc.
func (c *latestCollector) family(f pmtaField, counter bool) (family, *prometheus.Desc) {
	fam, known := pmtaFamilies[f]
	if !known {
		fam = family{name: sanitize(f.measurement + "_" + f.field), counter: counter}
		if counter {
			fam.name += "_total"
		}
		return fam, c.fb.desc(fam.name, nil, f.field, "PowerMTA's "+f.measurement)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.descs[f]
	if !ok {
		d = prometheus.NewDesc(fam.name, fam.help, nil, nil)
		c.descs[f] = d
	}
	return fam, d
}

// seriesMetric is one sample of Latest's: a prometheus.Metric that writes
// the label pairs made when its point arrived.
type seriesMetric struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair // sorted by name
	value   float64
	gauge   dto.Gauge // the one of gauge and counter whose Value is set
	counter dto.Counter
}

// Desc implements prometheus.Metric.
func (m *seriesMetric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric.
func (m *seriesMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.counter.Value != nil {
		out.Counter = &m.counter
	} else {
		out.Gauge = &m.gauge
	}
	return nil
}
