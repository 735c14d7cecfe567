package agent

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
)

// PipelineConfig is what the pipeline needs to tag and bound points.
type PipelineConfig struct {
	Server     string
	Tags       map[string]string
	MaxDomains int
	ISP        *ISPMap
}

// Pipeline tags the points of every batch and bounds their cardinality, then
// hands them to each sink's queue. It is safe for concurrent use: sources emit
// from their own goroutines.
type Pipeline struct {
	cfg    PipelineConfig
	static []Tag
	queues []Enqueuer

	batches       atomic.Int64
	points        atomic.Int64
	domainsFolded atomic.Int64
}

// Enqueuer takes points for one sink and calls durable once they are safe
// in its store. Delivery implements it.
type Enqueuer interface {
	Enqueue(points []Point, durable func())
}

// NewPipeline returns a pipeline that feeds queues.
func NewPipeline(cfg PipelineConfig, queues ...Enqueuer) *Pipeline {
	if cfg.ISP == nil {
		cfg.ISP = NewISPMap(nil)
	}
	p := &Pipeline{cfg: cfg, queues: queues}
	for k, v := range cfg.Tags {
		p.static = append(p.static, Tag{Key: k, Value: v})
	}
	slices.SortFunc(p.static, compareTags)
	return p
}

// Emit processes b and hands the result to every queue. b.Done is called
// once every queue reports the points durable — possibly later, from another
// goroutine, or never if a queue could not take them.
func (p *Pipeline) Emit(b Batch) {
	pts := p.Process(b.Points)
	p.batches.Add(1)
	p.points.Add(int64(len(pts)))
	if len(p.queues) == 0 {
		if b.Done != nil {
			b.Done()
		}
		return
	}
	var left atomic.Int64
	left.Store(int64(len(p.queues)))
	durable := func() {
		if left.Add(-1) == 0 && b.Done != nil {
			b.Done()
		}
	}
	for _, q := range p.queues {
		q.Enqueue(pts, durable)
	}
}

// Process tags the points and folds domains beyond the cap. It returns a new
// slice; the input points are not changed.
func (p *Pipeline) Process(in []Point) []Point {
	out := make([]Point, len(in))
	for i := range in {
		pt := in[i].Clone()
		p.tag(&pt)
		out[i] = pt
	}
	folded := 0
	out, folded = foldDomains(out, p.cfg.MaxDomains)
	p.domainsFolded.Add(int64(folded))
	return out
}

func (p *Pipeline) tag(pt *Point) {
	pt.sortTags()
	if d, ok := pt.TagValue("domain"); ok {
		nd := NormalizeDomain(d)
		if nd != d {
			pt.SetTag("domain", nd)
		}
		if _, has := pt.TagValue("isp"); !has && nd != "" {
			pt.SetTag("isp", p.cfg.ISP.Lookup(nd))
		}
	}
	for _, t := range p.static {
		if _, has := pt.TagValue(t.Key); !has {
			pt.SetTag(t.Key, t.Value)
		}
	}
	pt.SetTag("server", p.cfg.Server)
}

// Component and Stats make the pipeline an agent.StatsReporter.
func (p *Pipeline) Component() string { return "pipeline" }

// Stats reports what went through the pipeline.
func (p *Pipeline) Stats() []Field {
	return []Field{
		{Key: "batches", Value: p.batches.Load()},
		{Key: "points", Value: p.points.Load()},
		{Key: "domains_folded", Value: p.domainsFolded.Load()},
	}
}

// OtherDomain is the domain tag of points folded by the cardinality guard.
const OtherDomain = "other"

// foldDomains keeps the max domains with the most volume (the "rcp" or
// "count" fields) and renames the rest to "other", merging the points that
// then share measurement, tags and time: numeric fields are summed, except
// those ending in "_max" and the interval length "interval_s", which keep
// the maximum. It returns how many
// distinct domains were folded.
func foldDomains(pts []Point, max int) ([]Point, int) {
	if max <= 0 {
		return pts, 0
	}
	volume := map[string]float64{}
	for i := range pts {
		if d, ok := pts[i].TagValue("domain"); ok {
			volume[d] += pointVolume(&pts[i])
		}
	}
	if len(volume) <= max {
		return pts, 0
	}
	type dv struct {
		d string
		v float64
	}
	ranked := make([]dv, 0, len(volume))
	for d, v := range volume {
		ranked = append(ranked, dv{d, v})
	}
	slices.SortFunc(ranked, func(a, b dv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return strings.Compare(a.d, b.d)
	})
	keep := make(map[string]bool, max)
	for _, r := range ranked[:max] {
		keep[r.d] = true
	}
	folded := len(ranked) - max

	out := pts[:0:0]
	index := map[string]int{} // series key of a folded point → its place in out
	var key []byte
	for i := range pts {
		pt := pts[i]
		d, ok := pt.TagValue("domain")
		if !ok || keep[d] {
			out = append(out, pt)
			continue
		}
		pt.SetTag("domain", OtherDomain)
		key = seriesKey(key[:0], &pt)
		if j, seen := index[string(key)]; seen {
			mergeFields(&out[j], &pt)
			continue
		}
		index[string(key)] = len(out)
		out = append(out, pt)
	}
	return out, folded
}

func pointVolume(p *Point) float64 {
	for _, name := range []string{"rcp", "count"} {
		if v, ok := p.FieldValue(name); ok {
			// A flag is no volume: FieldNumber reads a bool as 0/1, which
			// must not rank a domain nor stand in for a later "count".
			if _, flag := v.(bool); flag {
				continue
			}
			if f, ok := FieldNumber(v); ok {
				return f
			}
		}
	}
	return 0
}

func seriesKey(dst []byte, p *Point) []byte {
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
func mergeFields(dst, src *Point) {
	for _, f := range src.Fields {
		i := slices.IndexFunc(dst.Fields, func(g Field) bool { return g.Key == f.Key })
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
			if takeMax {
				return max(av, bv)
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
