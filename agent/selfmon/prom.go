package selfmon

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// counterFields are the self-metrics that only grow; they are exposed as
// Prometheus counters named …_total. Everything else is a gauge.
var counterFields = map[string]bool{
	"polls": true, "errors": true, "rows_skipped": true, "pmta_restarts": true,
	"lines_read": true, "records": true, "malformed": true, "late": true, "truncations": true,
	"bytes_read": true, "diag_folded": true, "checkpoint_corrupt": true, "checkpoint_errors": true,
	"read_errors": true, "files_done": true, "batches": true, "points": true, "domains_folded": true,
	"written_points": true, "dropped_rejected": true, "append_errors": true, "splits": true,
	"dropped_points": true, "dropped_entries": true, "quarantined_files": true, "sync_errors": true,
	"write_errors": true, "records_read": true, "records_emitted": true, "out_of_range": true,
	"out_of_range_future": true, "out_of_range_old": true, "out_of_range_invalid": true,
	"enqueued_points": true, "dead_lettered_points": true, "dropped_unstored": true,
	"vmtas_folded": true, "pools_folded": true, "source_ips_folded": true, "bounce_cats_folded": true,
	"diags_folded": true, "values_sanitized": true, "points_merged": true,
	"fields_missing": true, "rejected_data_points": true,
}

func appendBuildInfo(b []byte, version, goVersion string) []byte {
	b = append(b, "# HELP pmta_agent_build_info The agent's version.\n# TYPE pmta_agent_build_info gauge\npmta_agent_build_info{version=\""...)
	b = appendLabelValue(b, version)
	b = append(b, "\",goversion=\""...)
	b = appendLabelValue(b, goVersion)
	return append(b, "\"} 1\n"...)
}

type sample struct {
	labels []agent.Tag
	value  float64
}

// appendSelfMetrics renders each component's stats as pmta_agent_<field>
// {component="…"}, one family per field name.
func appendSelfMetrics(b []byte, reporters []agent.StatsReporter) []byte {
	families := map[string][]sample{}
	for _, r := range reporters {
		for _, f := range r.Stats() {
			v, ok := agent.FieldNumber(f.Value)
			if !ok {
				continue
			}
			families[f.Key] = append(families[f.Key], sample{labels: []agent.Tag{{Key: "component", Value: r.Component()}}, value: v})
		}
	}
	names := make([]string, 0, len(families))
	for k := range families {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, field := range names {
		name, typ := "pmta_agent_"+sanitize(field), "gauge"
		if counterFields[field] {
			name, typ = name+"_total", "counter"
		}
		b = appendFamily(b, name, typ, families[field])
	}
	return b
}

func appendFamily(b []byte, name, typ string, samples []sample) []byte {
	b = append(b, "# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, '\n')
	for _, s := range samples {
		b = append(b, name...)
		if len(s.labels) > 0 {
			b = append(b, '{')
			for i, l := range s.labels {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, sanitize(l.Key)...)
				b = append(b, "=\""...)
				b = appendLabelValue(b, l.Value)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendValue(b, s.value)
		b = append(b, '\n')
	}
	return b
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendLabelValue escapes as the text format wants: backslash, quote and
// newline.
func appendLabelValue(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// sanitize makes a metric or label name out of a field or tag key.
func sanitize(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			ok = false
			break
		}
	}
	if ok && s != "" {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
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
