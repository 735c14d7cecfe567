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

// notSums are measurements whose fields are no sums: folding two of their
// series into one would add verdicts and percentages. pmta_verdict's values
// are the server's own source IPs and pools, bounded by the verdict
// window (verdict.MaxKeys), not by strangers.
var notSums = map[string]bool{"pmta_verdict": true}

// foldTag keeps, in each measurement, the max values of tag with the most
// volume (the "rcp" or "count" fields of the points that carry them) and
// sets the others to "other", in place. Each measurement is ranked on its
// own, so that one with many values (an opt-in full view of the accounting)
// cannot crowd out the values another kept by its own rule (the domains a
// capped view admitted for the day); "" and "other" are no values to rank.
// It returns how many values it folded, counted per measurement; the caller
// merges the points that now share a series. max <= 0 bounds nothing.
func foldTag(pts []agent.Point, tag string, max int) int {
	if max <= 0 {
		return 0
	}
	type mv struct{ m, v string }
	value := func(p *agent.Point) (mv, bool) {
		if notSums[p.Measurement] {
			return mv{}, false
		}
		v, ok := p.TagValue(tag)
		return mv{p.Measurement, v}, ok && v != "" && v != Other
	}
	volume := map[mv]float64{}
	distinct := map[string]int{}
	for i := range pts {
		if k, ok := value(&pts[i]); ok {
			if _, seen := volume[k]; !seen {
				distinct[k.m]++
			}
			volume[k] += pointVolume(&pts[i])
		}
	}
	type tv struct {
		v   string
		vol float64
	}
	ranked := map[string][]tv{}
	for k, vol := range volume {
		if distinct[k.m] > max {
			ranked[k.m] = append(ranked[k.m], tv{k.v, vol})
		}
	}
	if len(ranked) == 0 {
		return 0
	}
	fold := make(map[mv]bool)
	folded := 0
	for m, list := range ranked {
		slices.SortFunc(list, func(a, b tv) int {
			if c := cmp.Compare(b.vol, a.vol); c != 0 {
				return c
			}
			return strings.Compare(a.v, b.v)
		})
		for _, r := range list[max:] {
			fold[mv{m, r.v}] = true
		}
		folded += len(list) - max
	}
	for i := range pts {
		if k, ok := value(&pts[i]); ok && fold[k] {
			pts[i].SetTag(tag, Other)
		}
	}
	return folded
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
