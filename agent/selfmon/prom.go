package selfmon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/ratelog"
)

// newMetricsHandler returns /metrics: a registry of its own (not the
// process-wide default, which any imported package could fill) with the Go
// runtime's and the process's collectors, pmta_agent_build_info, the
// components' stats and, when latest is not nil, PowerMTA's values. A series
// that cannot be collected (a label value no Prometheus accepts, two series
// the same) is left out and logged; the rest of the scrape is served.
func newMetricsHandler(cfg Config, reporters func() []agent.StatsReporter, latest *Latest, log *slog.Logger) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pmta_agent_build_info",
		Help: "The agent's version and the Go version it was built with; always 1.",
		ConstLabels: prometheus.Labels{
			"version":   agent.SafeTag(cfg.Version),
			"goversion": runtime.Version(),
		},
	})
	build.Set(1)
	fb := &fallbacks{log: log, descs: map[string]*prometheus.Desc{}}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
		newSelfCollector(reporters, fb),
	}
	if latest != nil {
		cs = append(cs, newLatestCollector(latest, fb))
	}
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      &scrapeLog{log: log, ep: ratelog.Episode{Every: 10 * time.Minute}},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return h, errors.Join(errs...)
}

// selfCollector turns the components' stats into pmta_agent_<field>
// {component="…"} at every scrape, each field as selfFamilies describes it.
// It is an unchecked collector (Describe sends nothing): the fields it sees
// are known only when it collects.
type selfCollector struct {
	reporters func() []agent.StatsReporter
	descs     map[string]*prometheus.Desc // by field; read-only after newSelfCollector
	fb        *fallbacks
}

func newSelfCollector(reporters func() []agent.StatsReporter, fb *fallbacks) *selfCollector {
	c := &selfCollector{reporters: reporters, descs: make(map[string]*prometheus.Desc, len(selfFamilies)), fb: fb}
	for field, f := range selfFamilies {
		c.descs[field] = prometheus.NewDesc("pmta_agent_"+f.name, f.help, []string{"component"}, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *selfCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *selfCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.reporters() {
		component := agent.SafeTag(r.Component())
		for _, f := range r.Stats() {
			v, ok := agent.FieldNumber(f.Value)
			if !ok {
				continue
			}
			fam, known := selfFamilies[f.Key]
			desc := c.descs[f.Key]
			if !known {
				fam = family{name: "pmta_agent_" + sanitize(f.Key)}
				desc = c.fb.desc(fam.name, []string{"component"}, f.Key, "component "+component)
			}
			ch <- constMetric(desc, fam, v, component)
		}
	}
}

// constMetric is one sample of a family, or, if client_golang refuses it,
// the error, which the registry reports without failing the scrape.
func constMetric(desc *prometheus.Desc, fam family, v float64, labelValues ...string) prometheus.Metric {
	typ := prometheus.GaugeValue
	if fam.counter {
		typ = prometheus.CounterValue
	}
	if fam.scale != 0 {
		v *= fam.scale
	}
	m, err := prometheus.NewConstMetric(desc, typ, v, labelValues...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

// fallbacks gives a field that no table describes a family of its own,
// exposed as a gauge with a generic help, and logs it once: a field added
// to a component without a description shows up, and says so, instead of
// vanishing.
type fallbacks struct {
	log   *slog.Logger
	mu    sync.Mutex
	descs map[string]*prometheus.Desc // by name and label names
}

func (f *fallbacks) desc(name string, labels []string, field, of string) *prometheus.Desc {
	key := name + "\xff" + strings.Join(labels, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.descs[key]; ok {
		return d
	}
	f.log.Warn("/metrics: a field has no description; exposed as a gauge with a generic help", "metric", name, "field", field, "of", of)
	d := prometheus.NewDesc(name, "Not described yet: field "+field+" of "+of+".", labels, nil)
	f.descs[key] = d
	return d
}

// scrapeLog is promhttp's error log: what a scrape could not collect goes
// to the agent's log, at most once per ten minutes while it keeps
// happening, so that a value PowerMTA keeps sending wrong costs a line, not
// one per scrape.
type scrapeLog struct {
	log *slog.Logger
	ep  ratelog.Episode
}

func (s *scrapeLog) Println(v ...any) {
	due, _, held, _ := s.ep.Hit(time.Now())
	if !due {
		return
	}
	var msgs []string
	for _, x := range v {
		var me prometheus.MultiError
		switch {
		case errors.As(asError(x), &me):
			for _, err := range me {
				msgs = append(msgs, err.Error())
			}
		default:
			msgs = append(msgs, strings.TrimSuffix(fmt.Sprint(x), ":"))
		}
	}
	args := []any{"err", strings.Join(msgs, "; ")}
	if held > 0 {
		args = append(args, "suppressed_since_last", held)
	}
	s.log.Warn("/metrics: served without what could not be collected", args...)
}

func asError(x any) error {
	if err, ok := x.(error); ok {
		return err
	}
	return nil
}

// sanitize makes a metric or label name out of a field or tag key.
func sanitize(s string) string {
	ok := s != ""
	for i := 0; i < len(s) && ok; i++ {
		ok = nameByte(s[i], i)
	}
	if ok {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; nameByte(c, i) {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "_"
	}
	return sb.String()
}

func nameByte(c byte, i int) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
}
