package otlp

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Measurements and fields that the mapping treats specially.
const (
	measAcct  = "pmta_acct"
	measDiag  = "pmta_acct_diag"
	measAgent = "pmta_agent"

	// fieldInterval is the accounting interval's length in seconds: metadata
	// for the sums' end time, not a metric.
	fieldInterval = "interval_s"
	// fieldUptime is PowerMTA's uptime in pmta_status; it dates the start of
	// the *_total counters.
	fieldUptime = "uptime_s"

	// defaultInterval is the accounting interval assumed when a point has no
	// interval_s field (the aggregator's default).
	defaultInterval = 10 * time.Second
)

// role says how one field becomes an OTLP data point.
type role int

const (
	// roleGauge: a level or a value read at the point's time.
	roleGauge role = iota
	// roleAcctSum: a monotonic sum over one accounting interval, exported
	// with the configured temporality.
	roleAcctSum
	// roleTotal: a counter PowerMTA keeps since its own start; a cumulative
	// monotonic sum whatever the configured temporality.
	roleTotal
	// roleSkip: metadata, not exported.
	roleSkip
)

// isAcct reports whether a measurement holds accounting sums: pmta_acct, the
// other views of the counts (pmta_acct_domain, pmta_acct_full, …) and
// pmta_acct_diag.
func isAcct(measurement string) bool {
	return measurement == measAcct || strings.HasPrefix(measurement, measAcct+"_")
}

// fieldRole decides the OTLP type of one field.
func fieldRole(measurement, field string) role {
	acct := isAcct(measurement)
	switch {
	case acct && field == fieldInterval:
		return roleSkip
	case acct && (field == "count" || field == "bytes" || field == "queued_s_sum"):
		return roleAcctSum
	case measurement != measAgent && !acct && strings.HasSuffix(field, "_total"):
		return roleTotal
	}
	return roleGauge
}

// metricName is the OTLP name of a field: pmta.<measurement without its
// "pmta_" prefix>.<field>, through agent.SafeTag like every string of a
// request, so that a stray byte cannot make a request unencodable.
func metricName(measurement, field string) string {
	return agent.SafeTag("pmta." + strings.TrimPrefix(measurement, "pmta_") + "." + field)
}

// unitFor returns the UCUM unit of a field, following the OpenTelemetry
// conventions: "By", "KiBy", "s", "1" for flags and curly-brace annotations
// for counts of things. Rates (*_per_sec) get "<unit>/s".
func unitFor(measurement, field string) string {
	if isAcct(measurement) && field == "count" {
		return "{record}"
	}
	if base, ok := strings.CutSuffix(field, "_per_sec"); ok {
		u := tokenUnit(base)
		if u == "1" {
			return "1/s"
		}
		return u + "/s"
	}
	return tokenUnit(field)
}

// tokenUnit finds the unit from the field's words, the last meaningful word
// first ("out_rcp_last_min" is recipients, "queued_s_max" seconds).
func tokenUnit(field string) string {
	words := strings.Split(field, "_")
	for i := len(words) - 1; i >= 0; i-- {
		if u := wordUnit(words[i]); u != "" {
			return u
		}
	}
	return "1"
}

// wordUnit is the table behind tokenUnit: the unit one word of a field name
// stands for, or "" for words that say nothing about the unit.
func wordUnit(w string) string {
	switch w {
	case "s", "unix":
		return "s"
	case "kb":
		return "KiBy"
	case "bytes":
		return "By"
	case "pct":
		return "%"
	case "rcp", "recipients", "delivered", "deferred":
		return "{recipient}"
	case "msg", "msgs", "messages":
		return "{message}"
	case "conn", "connections":
		return "{connection}"
	case "domains":
		return "{domain}"
	case "files":
		return "{file}"
	case "names":
		return "{name}"
	case "up", "paused", "backoff", "shutting":
		return "1"
	case "errors":
		return "{error}"
	case "polls":
		return "{poll}"
	case "points":
		return "{point}"
	case "batches":
		return "{batch}"
	case "entries":
		return "{entry}"
	case "lines":
		return "{line}"
	case "records":
		return "{record}"
	case "restarts":
		return "{restart}"
	case "splits":
		return "{split}"
	}
	return ""
}

// number is a field value as OTLP carries it.
type number struct {
	i       int64
	f       float64
	isFloat bool
}

// numeric converts a field value; ok is false for values that OTLP metrics
// cannot carry: strings, and NaN and ±Inf, which line protocol leaves out
// too and which would poison a cumulative total for good. Flags stored as
// bool become 0/1. The other Go number types are taken as
// agent.AppendLineProtocol takes them.
func numeric(v any) (n number, ok bool) {
	switch x := v.(type) {
	case int64:
		return number{i: x}, true
	case int:
		return number{i: int64(x)}, true
	case int32:
		return number{i: int64(x)}, true
	case uint32:
		return number{i: int64(x)}, true
	case uint64:
		if x > math.MaxInt64 {
			return number{f: float64(x), isFloat: true}, true
		}
		return number{i: int64(x)}, true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return number{}, false
		}
		return number{f: x, isFloat: true}, true
	case float32:
		return numeric(float64(x))
	case bool:
		if x {
			return number{i: 1}, true
		}
		return number{}, true
	}
	return number{}, false
}

// maxFieldSeconds bounds a duration field (interval_s, uptime_s): a century
// is beyond any real value and well within time.Duration, so that adding it
// to a time cannot overflow.
const maxFieldSeconds = 100 * 365 * 24 * 3600

// seconds reads a duration field (int64 or float64 seconds); ok is false
// when it is missing, not a number, negative or beyond maxFieldSeconds.
func seconds(p *agent.Point, key string) (time.Duration, bool) {
	v, ok := p.FieldValue(key)
	if !ok {
		return 0, false
	}
	n, ok := numeric(v)
	if !ok {
		return 0, false
	}
	if n.isFloat {
		if n.f < 0 || n.f > maxFieldSeconds {
			return 0, false
		}
		return time.Duration(n.f * float64(time.Second)), true
	}
	if n.i < 0 || n.i > maxFieldSeconds {
		return 0, false
	}
	return time.Duration(n.i) * time.Second, true
}

// intervalOf returns the accounting interval length of an acct point.
func intervalOf(p *agent.Point) time.Duration {
	if d, ok := seconds(p, fieldInterval); ok && d > 0 {
		return d
	}
	return defaultInterval
}

// seriesKey identifies one series for the cumulative state: the metric name
// and the attributes (the point's non-empty tags, server included, as
// exported: sanitized and sorted by key), values quoted so that no two
// attribute sets share a key. Two tag values that sanitize alike are one
// series at the collector, so they share one running total.
func seriesKey(name string, attrs *attribute.Set) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for it := attrs.Iter(); it.Next(); {
		i, kv := it.IndexedAttribute()
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(kv.Key))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(kv.Value.AsString()))
	}
	b.WriteByte('}')
	return b.String()
}

// Limits of an OTLP timestamp: nanoseconds since 1970 in a uint64, which
// the exporters fill from time.Time.UnixNano — undefined after 2262-04-11 —
// turning anything before 1970 into 0, which OTLP reads as "no time".
var (
	minOTLPTime = time.Unix(0, 1)
	maxOTLPTime = time.Unix(0, math.MaxInt64)
)

// timeOK reports whether t can be an OTLP timestamp.
func timeOK(t time.Time) bool {
	return !t.Before(minOTLPTime) && !t.After(maxOTLPTime)
}

// exportProblem returns why p cannot be exported, or "" when it can: a time
// OTLP cannot carry (the point's own, or the end of its accounting
// interval), or no field that becomes a data point. Write refuses such a
// point for good rather than export it with a wrong time, or count it as
// written when nothing was sent.
func exportProblem(p *agent.Point) string {
	if !timeOK(p.Time) {
		return fmt.Sprintf("time %s is outside what OTLP can carry (after 1970-01-01, before 2262-04-11)",
			p.Time.UTC().Format(time.RFC3339Nano))
	}
	exportable, acctSum := false, false
	for _, f := range p.Fields {
		ro := fieldRole(p.Measurement, f.Key)
		if ro == roleSkip || f.Key == "" {
			continue
		}
		if _, ok := numeric(f.Value); !ok {
			continue
		}
		exportable = true
		acctSum = acctSum || ro == roleAcctSum
	}
	if !exportable {
		return "no numeric field (OTLP metrics carry finite numbers and flags only)"
	}
	if end := p.Time.Add(intervalOf(p)); acctSum && !timeOK(end) {
		return fmt.Sprintf("interval end %s is outside what OTLP can carry (before 2262-04-11)",
			end.UTC().Format(time.RFC3339Nano))
	}
	return ""
}
