package engine

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Other is the value that tag values beyond a cap fold into.
const Other = "other"

// foldedTags are the tags whose values strangers or configuration can
// multiply — recipient domains, vmtas, pools, source IPs, bounce categories
// and dsnDiag patterns — and that the pipeline bounds, in this order.
// foldedStat names each one's fold count in the pipeline's stats.
var (
	foldedTags = [...]string{"domain", "vmta", "pool", "source_ip", "bounce_cat", "diag"}
	foldedStat = [...]string{"domains_folded", "vmtas_folded", "pools_folded", "source_ips_folded", "bounce_cats_folded", "diags_folded"}
)

// foldTag keeps the max values of tag with the most volume (the "rcp" or
// "count" fields of the points that carry them) and sets the others to
// "other", in place. It returns how many distinct values it folded; the
// caller merges the points that now share a series. max <= 0 bounds nothing.
func foldTag(pts []agent.Point, tag string, max int) int {
	if max <= 0 {
		return 0
	}
	volume := map[string]float64{}
	for i := range pts {
		if v, ok := pts[i].TagValue(tag); ok {
			volume[v] += pointVolume(&pts[i])
		}
	}
	if len(volume) <= max {
		return 0
	}
	type tv struct {
		v   string
		vol float64
	}
	ranked := make([]tv, 0, len(volume))
	for v, vol := range volume {
		ranked = append(ranked, tv{v, vol})
	}
	slices.SortFunc(ranked, func(a, b tv) int {
		if c := cmp.Compare(b.vol, a.vol); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	keep := make(map[string]bool, max)
	for _, r := range ranked[:max] {
		keep[r.v] = true
	}
	for i := range pts {
		if v, ok := pts[i].TagValue(tag); ok && !keep[v] {
			pts[i].SetTag(tag, Other)
		}
	}
	return len(ranked) - max
}

// mergeSeries merges points that share measurement, tags and time into the
// first of them: numeric fields are summed, except those ending in "_max"
// and the interval length "interval_s", which keep the maximum. It returns
// the points in their first order and how many were merged away.
func mergeSeries(pts []agent.Point) ([]agent.Point, int) {
	out := pts[:0:0]
	index := make(map[string]int, len(pts)) // series key → place in out
	owned := map[int]bool{}                 // places whose fields are a copy
	var key []byte
	for i := range pts {
		key = seriesKey(key[:0], &pts[i])
		if j, seen := index[string(key)]; seen {
			// The fields may be the input's (see Process): copy them
			// before the first change.
			if !owned[j] {
				out[j].Fields = slices.Clone(out[j].Fields)
				owned[j] = true
			}
			mergeFields(&out[j], &pts[i])
			continue
		}
		index[string(key)] = len(out)
		out = append(out, pts[i])
	}
	return out, len(pts) - len(out)
}

func pointVolume(p *agent.Point) float64 {
	for _, name := range []string{"rcp", "count"} {
		if v, ok := p.FieldValue(name); ok {
			// A flag is no volume: FieldNumber reads a bool as 0/1, which
			// must not rank a value nor stand in for a later "count".
			if _, flag := v.(bool); flag {
				continue
			}
			if f, ok := agent.FieldNumber(v); ok {
				return f
			}
		}
	}
	return 0
}

func seriesKey(dst []byte, p *agent.Point) []byte {
	dst = append(dst, p.Measurement...)
	for _, t := range p.Tags {
		dst = append(dst, 0)
		dst = append(dst, t.Key...)
		dst = append(dst, 0)
		dst = append(dst, t.Value...)
	}
	dst = append(dst, 0)
	return p.Time.AppendFormat(dst, "20060102150405.000000000")
}

// mergeFields adds src's fields into dst (sum, or max for *_max fields).
func mergeFields(dst, src *agent.Point) {
	for _, f := range src.Fields {
		i := slices.IndexFunc(dst.Fields, func(g agent.Field) bool { return g.Key == f.Key })
		if i < 0 {
			dst.Fields = append(dst.Fields, f)
			continue
		}
		dst.Fields[i].Value = combine(dst.Fields[i].Value, f.Value, strings.HasSuffix(f.Key, "_max") || f.Key == "interval_s")
	}
}

func combine(a, b any, takeMax bool) any {
	switch av := a.(type) {
	case int64:
		if bv, ok := b.(int64); ok {
			switch {
			case takeMax:
				return max(av, bv)
			case bv > 0 && av > math.MaxInt64-bv:
				return int64(math.MaxInt64) // a sum stops at the bound rather than wrap
			case bv < 0 && av < math.MinInt64-bv:
				return int64(math.MinInt64)
			}
			return av + bv
		}
	case float64:
		if bv, ok := b.(float64); ok {
			if takeMax {
				return max(av, bv)
			}
			return av + bv
		}
	}
	return a // strings and bools, or mismatched types: keep the first
}
