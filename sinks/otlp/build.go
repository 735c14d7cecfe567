package otlp

import (
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Resource attribute keys (OpenTelemetry semantic conventions).
const (
	attrServiceName    = "service.name"
	attrServiceVersion = "service.version"
	attrHostName       = "host.name"
	serviceName        = "pmta-agent"
	serverTag          = "server"
	scopeName          = "github.com/pmta-agent/pmta-agent"
)

// run is a stretch of consecutive points with the same server tag: the
// points of one export, since an export carries one resource.
type run struct {
	server string
	lo, hi int
}

// runsByServer splits points into runs of one server each, in order, so that
// what a Write delivered is always a prefix of the points.
func runsByServer(points []agent.Point) []run {
	var runs []run
	for i := range points {
		server, _ := points[i].TagValue(serverTag)
		if n := len(runs); n > 0 && runs[n-1].server == server {
			runs[n-1].hi = i + 1
			continue
		}
		runs = append(runs, run{server: server, lo: i, hi: i + 1})
	}
	return runs
}

// newResource returns the resource of one mail server. extra comes last, so
// an operator may override service.name or service.version, but host.name
// always names the server the points came from when they carry one. Every
// string goes through agent.SafeTag, as in the data points.
func newResource(server, version string, extra map[string]string) *resource.Resource {
	attrs := []attribute.KeyValue{attribute.String(attrServiceName, serviceName)}
	if version != "" {
		attrs = append(attrs, attribute.String(attrServiceVersion, agent.SafeTag(version)))
	}
	for k, v := range extra {
		k = agent.SafeTag(k)
		if k == "" || (k == attrHostName && server != "") {
			continue
		}
		attrs = append(attrs, attribute.String(k, agent.SafeTag(v)))
	}
	if server != "" {
		attrs = append(attrs, attribute.String(attrHostName, agent.SafeTag(server)))
	}
	// NewSchemaless keeps the last value of a repeated key, which is what
	// lets extra override the defaults above.
	return resource.NewSchemaless(attrs...)
}

// metricKey identifies one metric of a request. A field's name fixes its
// role, so name and value type are enough.
type metricKey struct {
	name    string
	isFloat bool
}

// metricAcc collects the data points of one metric.
type metricAcc struct {
	name, unit string
	role       role
	cumulative bool
	ints       []metricdata.DataPoint[int64]
	floats     []metricdata.DataPoint[float64]
}

// request is the content of one export: every metric of one run of points.
type request struct {
	order   []metricKey
	metrics map[metricKey]*metricAcc

	dataPoints  int // data points in the request
	replays     int // accounting sums skipped as replays (cumulative mode)
	unsupported int // fields that are not numbers
}

// buildRequest turns points into OTLP metrics. With tx (cumulative mode) the
// accounting sums become running totals; tx then holds the new totals until
// the caller commits them after a successful export. Points are visited in
// time order in that mode, so that two intervals of one series in one write
// add up in order.
func buildRequest(points []agent.Point, tx *cumTx) *request {
	r := &request{metrics: make(map[metricKey]*metricAcc)}
	if tx == nil {
		for i := range points {
			r.addPoint(&points[i], nil)
		}
		return r
	}
	idx := make([]int, len(points))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return points[a].Time.Compare(points[b].Time) })
	for _, i := range idx {
		r.addPoint(&points[i], tx)
	}
	return r
}

// addPoint adds the data points of p, which exportProblem accepted.
func (r *request) addPoint(p *agent.Point, tx *cumTx) {
	var attrs attribute.Set
	attrsBuilt := false
	for _, f := range p.Fields {
		ro := fieldRole(p.Measurement, f.Key)
		if ro == roleSkip {
			continue
		}
		if f.Key == "" { // line protocol leaves it out too
			r.unsupported++
			continue
		}
		n, ok := numeric(f.Value)
		if !ok {
			r.unsupported++
			continue
		}
		if !attrsBuilt {
			attrs, attrsBuilt = attributesOf(p.Tags), true
		}
		name := metricName(p.Measurement, f.Key)
		start, end := time.Time{}, p.Time
		cumulative := false
		switch ro {
		case roleAcctSum:
			// The point's time is the interval start: the sum covers
			// [start, start+interval).
			start, end = p.Time, p.Time.Add(intervalOf(p))
			if tx != nil {
				total, seriesStart, fresh := tx.add(seriesKey(name, &attrs), p.Time, n)
				if !fresh {
					r.replays++
					continue
				}
				n, start, cumulative = total, seriesStart, true
			}
		case roleTotal:
			cumulative = true
			if up, ok := seconds(p, fieldUptime); ok && up > 0 && timeOK(p.Time.Add(-up)) {
				start = p.Time.Add(-up)
			}
		}
		r.append(metricAcc{name: name, unit: unitFor(p.Measurement, f.Key), role: ro, cumulative: cumulative},
			n, attrs, start, end)
	}
}

func (r *request) append(proto metricAcc, n number, attrs attribute.Set, start, end time.Time) {
	key := metricKey{name: proto.name, isFloat: n.isFloat}
	acc, ok := r.metrics[key]
	if !ok {
		acc = &proto
		r.metrics[key] = acc
		r.order = append(r.order, key)
	}
	if n.isFloat {
		acc.floats = append(acc.floats, metricdata.DataPoint[float64]{Attributes: attrs, StartTime: start, Time: end, Value: n.f})
	} else {
		acc.ints = append(acc.ints, metricdata.DataPoint[int64]{Attributes: attrs, StartTime: start, Time: end, Value: n.i})
	}
	r.dataPoints++
}

// attributesOf turns the tags with a key and a value into attributes (an
// empty tag value means the tag is absent), both through agent.SafeTag: the
// protobuf encoders refuse a request holding a string that is not valid
// UTF-8, so one stray byte in a recipient domain would otherwise block
// every export of its batch.
func attributesOf(tags []agent.Tag) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, len(tags))
	for _, t := range tags {
		if t.Key != "" && t.Value != "" {
			kvs = append(kvs, attribute.String(agent.SafeTag(t.Key), agent.SafeTag(t.Value)))
		}
	}
	return attribute.NewSet(kvs...)
}

// resourceMetrics assembles the export.
func (r *request) resourceMetrics(res *resource.Resource, scope instrumentation.Scope) metricdata.ResourceMetrics {
	ms := make([]metricdata.Metrics, 0, len(r.order))
	for _, k := range r.order {
		acc := r.metrics[k]
		m := metricdata.Metrics{Name: acc.name, Unit: acc.unit}
		if k.isFloat {
			m.Data = aggregation(acc, acc.floats)
		} else {
			m.Data = aggregation(acc, acc.ints)
		}
		ms = append(ms, m)
	}
	return metricdata.ResourceMetrics{
		Resource:     res,
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: scope, Metrics: ms}},
	}
}

func aggregation[N int64 | float64](acc *metricAcc, dps []metricdata.DataPoint[N]) metricdata.Aggregation {
	if acc.role == roleGauge {
		return metricdata.Gauge[N]{DataPoints: dps}
	}
	t := metricdata.DeltaTemporality
	if acc.cumulative {
		t = metricdata.CumulativeTemporality
	}
	return metricdata.Sum[N]{DataPoints: dps, Temporality: t, IsMonotonic: true}
}
