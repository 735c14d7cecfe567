package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pmta-agent/pmta-agent/agent"
)

// PipelineConfig is the pipeline section of the configuration: the caps on
// the tags strangers or configuration can multiply, and the operator's own
// domain → ISP rules. Server and Tags come from the top of the
// configuration; the wiring sets them.
type PipelineConfig struct {
	// MaxDomains caps the distinct domains per batch; the smallest by
	// volume are folded into domain="other". The other caps do the same
	// for their tag. 0 bounds nothing.
	MaxDomains    int `koanf:"max_domains"`
	MaxVMTAs      int `koanf:"max_vmtas"`
	MaxPools      int `koanf:"max_pools"`
	MaxSourceIPs  int `koanf:"max_source_ips"`
	MaxBounceCats int `koanf:"max_bounce_cats"`
	MaxDiags      int `koanf:"max_diags"`
	// ISPMap adds to (and overrides) the built-in domain → provider map.
	// Keys are domains ("example.net") or "name.*" for any suffix.
	ISPMap map[string]string `koanf:"isp_map"`

	// Server is the server tag of every point; Tags are added to every
	// point (a point's own tag of the same name wins).
	Server string            `koanf:"-"`
	Tags   map[string]string `koanf:"-"`
	// ISP, if set, is the map to use instead of one built from ISPMap: the
	// one the accounting tailer uses too, so that both agree and the map
	// (and its cache) exists once.
	ISP *agent.ISPMap `koanf:"-"`
}

// DefaultPipelineConfig holds the caps, sized for a large sender: hundreds
// of source IPs and vmtas, thousands of recipient domains of which the top
// 500 by volume carry nearly all of it.
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{MaxDomains: 500, MaxVMTAs: 500, MaxPools: 100, MaxSourceIPs: 1000, MaxBounceCats: 50, MaxDiags: 500}
}

// Validate reports every problem, each starting with its key relative to
// the pipeline section.
func (c PipelineConfig) Validate() []error {
	var errs []error
	for _, m := range []struct {
		key string
		v   int
	}{
		{"max_domains", c.MaxDomains}, {"max_vmtas", c.MaxVMTAs}, {"max_pools", c.MaxPools},
		{"max_source_ips", c.MaxSourceIPs}, {"max_bounce_cats", c.MaxBounceCats}, {"max_diags", c.MaxDiags},
	} {
		if m.v < 1 {
			errs = append(errs, fmt.Errorf("%s: must be at least 1", m.key))
		}
	}
	for k, v := range c.ISPMap {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("isp_map: rule %q → %q has an empty side", k, v))
		}
	}
	return errs
}

// maxValues returns the caps by tag name (foldedTags lists them).
func (c PipelineConfig) maxValues() map[string]int {
	return map[string]int{
		"domain": c.MaxDomains, "vmta": c.MaxVMTAs, "pool": c.MaxPools,
		"source_ip": c.MaxSourceIPs, "bounce_cat": c.MaxBounceCats, "diag": c.MaxDiags,
	}
}

// Pipeline tags the points of every batch and bounds their cardinality, then
// hands them to each sink's queue. It is safe for concurrent use: sources emit
// from their own goroutines.
type Pipeline struct {
	set    atomic.Pointer[pipelineSettings] // swapped whole by Reconfigure
	queues []Enqueuer

	batches   atomic.Int64
	points    atomic.Int64
	folded    [len(foldedTags)]atomic.Int64
	sanitized atomic.Int64 // tag values agent.SafeTag changed
	merged    atomic.Int64 // points merged into another with the same series and time
}

// Enqueuer takes points for one sink and calls durable once they are safe
// in its store. Delivery implements it.
type Enqueuer interface {
	Enqueue(points []agent.Point, durable func())
}

// pipelineSettings is what the configuration makes of a pipeline: one
// batch is processed with one of them, whatever Reconfigure does meanwhile.
type pipelineSettings struct {
	server string
	isp    *agent.ISPMap
	caps   map[string]int
	static []agent.Tag
}

func newPipelineSettings(cfg PipelineConfig) *pipelineSettings {
	isp := cfg.ISP
	if isp == nil {
		isp = agent.NewISPMap(cfg.ISPMap)
	}
	s := &pipelineSettings{server: cfg.Server, isp: isp, caps: cfg.maxValues()}
	for k, v := range cfg.Tags {
		s.static = append(s.static, agent.Tag{Key: k, Value: v})
	}
	slices.SortFunc(s.static, agent.CompareTags)
	return s
}

// NewPipeline returns a pipeline that feeds queues.
func NewPipeline(cfg PipelineConfig, queues ...Enqueuer) *Pipeline {
	p := &Pipeline{queues: queues}
	p.set.Store(newPipelineSettings(cfg))
	return p
}

// Reconfigure makes the batches processed from now on follow cfg (a
// reload): tags, server, caps and ISP rules. The queues and the counts stay.
func (p *Pipeline) Reconfigure(cfg PipelineConfig) { p.set.Store(newPipelineSettings(cfg)) }

// Emit processes b and hands the result to every queue. b.Done is called
// once every queue reports the points durable — possibly later, from another
// goroutine, or never if a queue could not take them.
func (p *Pipeline) Emit(b agent.Batch) {
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

// Process tags the points, makes their tag values safe (SafeTag) and folds
// the values beyond each tag's cap into "other". Points that end up with the
// same measurement, tags and time — folded together, or two values SafeTag
// made equal — are merged into one, their fields summed (the maximum for
// *_max and interval_s), so that no sum is lost to a series overwritten in
// the sink. It returns a new slice; the input points are not changed.
func (p *Pipeline) Process(in []agent.Point) []agent.Point {
	out := make([]agent.Point, len(in))
	// The tags of every point live in one slab, each with room for the
	// server, isp and static tags tag adds, so that a batch costs two
	// allocations instead of three per point; fields are shared with the
	// input until a merge changes them (mergeSeries copies them first).
	set := p.set.Load()
	room := 2 + len(set.static)
	n := 0
	for i := range in {
		n += len(in[i].Tags) + room
	}
	slab := make([]agent.Tag, n)
	changed := false
	for i := range in {
		pt := in[i]
		k := copy(slab, pt.Tags)
		pt.Tags, slab = slab[:k:k+room], slab[k+room:]
		if p.tag(set, &pt) {
			changed = true
		}
		out[i] = pt
	}
	for i, tag := range foldedTags {
		if n := foldTag(out, tag, set.caps[tag]); n > 0 {
			p.folded[i].Add(int64(n))
			changed = true
		}
	}
	if changed {
		var merged int
		out, merged = mergeSeries(out)
		p.merged.Add(int64(merged))
	}
	return out
}

// tag normalises the domain, adds the isp, static and server tags, and
// makes every tag value safe. It reports whether it changed a value, which
// can make two points one series.
func (p *Pipeline) tag(set *pipelineSettings, pt *agent.Point) (changed bool) {
	pt.SortTags()
	if d, ok := pt.TagValue("domain"); ok {
		nd := agent.NormalizeDomain(d)
		if nd != d {
			pt.SetTag("domain", nd)
			changed = true
		}
		if _, has := pt.TagValue("isp"); !has && nd != "" {
			pt.SetTag("isp", set.isp.Lookup(nd))
		}
	}
	for _, t := range set.static {
		if _, has := pt.TagValue(t.Key); !has {
			pt.SetTag(t.Key, t.Value)
		}
	}
	pt.SetTag("server", set.server)
	for i := range pt.Tags {
		if v := agent.SafeTag(pt.Tags[i].Value); v != pt.Tags[i].Value {
			pt.Tags[i].Value = v
			changed = true
			p.sanitized.Add(1)
		}
	}
	return changed
}

// Component and Stats make the pipeline an agent.StatsReporter.
func (p *Pipeline) Component() string { return "pipeline" }

// Stats reports what went through the pipeline: batches, points, the values
// folded into "other" per tag (domains_folded, vmtas_folded, pools_folded,
// source_ips_folded, bounce_cats_folded, diags_folded), the tag values
// SafeTag changed (values_sanitized) and the points merged into another of
// the same series and time (points_merged).
func (p *Pipeline) Stats() []agent.Field {
	f := []agent.Field{
		{Key: "batches", Value: p.batches.Load()},
		{Key: "points", Value: p.points.Load()},
	}
	for i, name := range foldedStat {
		f = append(f, agent.Field{Key: name, Value: p.folded[i].Load()})
	}
	return append(f,
		agent.Field{Key: "values_sanitized", Value: p.sanitized.Load()},
		agent.Field{Key: "points_merged", Value: p.merged.Load()})
}
