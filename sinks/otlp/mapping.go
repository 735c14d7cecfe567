package otlp

import (
	"strconv"
	"strings"
	"time"

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

// fieldRole decides the OTLP type of one field.
func fieldRole(measurement, field string) role {
	acct := measurement == measAcct || measurement == measDiag
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
// "pmta_" prefix>.<field>.
func metricName(measurement, field string) string {
	return "pmta." + strings.TrimPrefix(measurement, "pmta_") + "." + field
}

// unitFor returns the UCUM unit of a field, following the OpenTelemetry
// conventions: "By", "KiBy", "s", "1" for flags and curly-brace annotations
// for counts of things. Rates (*_per_sec) get "<unit>/s".
func unitFor(measurement, field string) string {
	if (measurement == measAcct || measurement == measDiag) && field == "count" {
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

// numeric converts a field value; ok is false for values that are not
// numbers (strings), which OTLP metrics cannot carry. Flags stored as bool
// become 0/1.
func numeric(v any) (n number, ok bool) {
	switch x := v.(type) {
	case int64:
		return number{i: x}, true
	case float64:
		return number{f: x, isFloat: true}, true
	case bool:
		if x {
			return number{i: 1}, true
		}
		return number{}, true
	}
	return number{}, false
}

// seconds reads a duration field (int64 or float64 seconds).
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
		return time.Duration(n.f * float64(time.Second)), true
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
// and the non-empty tags (which include server), in the tags' sorted order,
// values quoted so that no two tag sets share a key.
func seriesKey(name string, tags []agent.Tag) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	for _, t := range tags {
		if t.Value == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(t.Key)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(t.Value))
	}
	b.WriteByte('}')
	return b.String()
}
