package acct

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// View is one dimension set of the accounting counts: a measurement and the
// tags it keeps. The aggregator sums records at the finest grain (every tag)
// and rolls each closed interval up into every view, so each view's count
// sums to the records read, whichever tags it leaves out. A view is how a
// fleet chooses its series budget: the full cross product of type × domain ×
// vmta × source IP × pool × bounce category × DSN class reaches hundreds of
// thousands of series per large server, while the questions operators ask
// need a few of them at a time.
type View struct {
	// Name is the measurement: pmta_acct or pmta_acct_<something>, so
	// that sinks and dashboards know it for an accounting sum.
	Name string `koanf:"name"`
	// Tags are the dimensions kept, some of ViewTags(); "type" is required.
	// The server and the configuration's static tags are added to every
	// point as usual.
	Tags []string `koanf:"tags"`
	// MaxDomains caps the distinct domain values of the view per UTC day
	// (0: no cap; only with the domain tag). Each closed interval admits
	// its domains by volume while there is room; the others are counted
	// under domain="other" for the rest of the day, so the view's series
	// per day stay bounded however many domains strangers send to.
	MaxDomains int `koanf:"max_domains"`
}

// viewTags are the dimensions a view can keep, in the order of their tag
// keys; ViewTags returns them.
var viewTags = [...]string{"bounce_cat", "domain", "dsn_class", "isp", "pool", "source_ip", "type", "vmta"}

// ViewTags returns the dimensions a view can keep.
func ViewTags() []string { return slices.Clone(viewTags[:]) }

// DefaultViews returns the views of the default configuration, sized so that
// a large server (200 source IPs, 50 vmtas, 5,000 active domains) stays
// below 20,000 pmta_acct* series a day (measured in testdata/bench):
//   - pmta_acct, per ISP × source IP: what the deferral and bounce rates by
//     provider, vmta, pool and IP panels and alerts read;
//   - pmta_acct_domain, per recipient domain with bounce category and DSN
//     class, at most 500 domains a UTC day (see View.MaxDomains: the
//     first by volume, interval by interval, so the day's big domains,
//     present from its first minutes, are in; the rest "other").
//
// The full cross product is opt-in (see deploy/pmta-agent.example.yaml).
func DefaultViews() []View {
	return []View{
		{Name: measAcct, Tags: []string{"type", "isp", "vmta", "pool", "source_ip"}},
		{Name: measAcct + "_domain", Tags: []string{"type", "domain", "isp", "bounce_cat", "dsn_class"}, MaxDomains: 500},
	}
}

// FullView is the whole cross product, every tag: the pmta_acct layout of
// releases before views, for a small server or a short investigation.
func FullView() View {
	return View{Name: measAcct + "_full", Tags: ViewTags()}
}

// validateViews adds the problems of the views to p.
func validateViews(p *problems, views []View) {
	if len(views) == 0 {
		p.add("views", "must list at least one view (the default views are pmta_acct and pmta_acct_domain)")
	}
	seen := map[string]bool{}
	for i, v := range views {
		key := fmt.Sprintf("views[%d]", i)
		switch {
		case v.Name != measAcct && !strings.HasPrefix(v.Name, measAcct+"_"):
			p.add(key+".name", fmt.Sprintf("%q must be pmta_acct or start with pmta_acct_", v.Name))
		case v.Name == measDiag:
			p.add(key+".name", fmt.Sprintf("%q is the measurement of the dsnDiag patterns", v.Name))
		case !agent.IsPlainTag([]byte(v.Name)) || strings.ContainsAny(v.Name, " ,=\\\""):
			p.add(key+".name", fmt.Sprintf("%q: use letters, digits and underscores", v.Name))
		case seen[v.Name]:
			p.add(key+".name", fmt.Sprintf("%q is named twice", v.Name))
		}
		seen[v.Name] = true
		tags := map[string]bool{}
		for _, t := range v.Tags {
			if !slices.Contains(viewTags[:], t) {
				p.add(key+".tags", fmt.Sprintf("%q is no accounting dimension; want some of %s", t, strings.Join(viewTags[:], ", ")))
			} else if tags[t] {
				p.add(key+".tags", fmt.Sprintf("%q is listed twice", t))
			}
			tags[t] = true
		}
		if !tags["type"] {
			p.add(key+".tags", "must include type: a sum over deliveries, deferrals and bounces together means nothing")
		}
		if v.MaxDomains < 0 {
			p.add(key+".max_domains", "must be 0 (no cap) or more")
		} else if v.MaxDomains > 0 && !tags["domain"] {
			p.add(key+".max_domains", "is set but the view has no domain tag")
		}
	}
}

// dims is a set of dimensions: bit i is viewTags[i].
type dims uint8

const (
	dimBounceCat dims = 1 << iota
	dimDomain
	dimDsnClass
	dimISP
	dimPool
	dimSourceIP
	dimType
	dimVmta
)

// view is a View ready to roll intervals up, with its admitted domains.
type view struct {
	name       string
	keep       dims
	maxDomains int
	day        int64               // the UTC day (Unix days) admitted is for
	admitted   map[string]struct{} // domains admitted that day
}

func newViews(vs []View) []*view {
	out := make([]*view, 0, len(vs))
	for _, v := range vs {
		w := &view{name: v.Name, maxDomains: v.MaxDomains, admitted: map[string]struct{}{}}
		for _, t := range v.Tags {
			if i := slices.Index(viewTags[:], t); i >= 0 {
				w.keep |= 1 << i
			}
		}
		out = append(out, w)
	}
	return out
}

// project returns k with the dimensions the view leaves out cleared, and its
// domain folded into "other" if it was not admitted.
func (v *view) project(k aggKey) aggKey {
	if v.keep&dimBounceCat == 0 {
		k.bounceCat = ""
	}
	if v.keep&dimDomain == 0 {
		k.domain = ""
	} else if v.maxDomains > 0 && k.domain != "" {
		if _, ok := v.admitted[k.domain]; !ok {
			k.domain = diagOther
		}
	}
	if v.keep&dimDsnClass == 0 {
		k.dsnClass = 0
	}
	if v.keep&dimISP == 0 {
		k.isp = ""
	}
	if v.keep&dimPool == 0 {
		k.pool = ""
	}
	if v.keep&dimSourceIP == 0 {
		k.sourceIP = ""
	}
	if v.keep&dimVmta == 0 {
		k.vmta = ""
	}
	return k
}

const secondsPerDay = 24 * 60 * 60

// admit admits the domains of an interval about to close, largest volume
// first, while the day has room. A new UTC day starts with none admitted.
func (v *view) admit(entries []aggEntry, start int64) {
	if day := floorDiv(start, secondsPerDay); day != v.day {
		v.day = day
		clear(v.admitted)
	}
	if len(v.admitted) >= v.maxDomains {
		return
	}
	volume := map[string]int64{}
	for i := range entries {
		if e := &entries[i]; e.key.domain != "" {
			d := e.key.domain
			if _, ok := v.admitted[d]; !ok {
				volume[d] += e.count
			}
		}
	}
	type dv struct {
		d string
		n int64
	}
	ranked := make([]dv, 0, len(volume))
	for d, n := range volume {
		ranked = append(ranked, dv{d, n})
	}
	slices.SortFunc(ranked, func(x, y dv) int { return cmp.Or(cmp.Compare(y.n, x.n), strings.Compare(x.d, y.d)) })
	for _, r := range ranked[:min(len(ranked), v.maxDomains-len(v.admitted))] {
		v.admitted[r.d] = struct{}{}
	}
}

// appendPoints rolls a closed interval up into the view's points, in a fixed
// order, so that a replay emits the very same batch.
func (v *view) appendPoints(pts []agent.Point, entries []aggEntry, start int64, ts time.Time, ivSec int64) []agent.Point {
	if v.maxDomains > 0 && v.keep&dimDomain != 0 {
		v.admit(entries, start)
	}
	rolled := make(map[aggKey]*aggVal, len(entries))
	for i := range entries {
		e := &entries[i]
		k := v.project(e.key)
		r := rolled[k]
		if r == nil {
			r = &aggVal{}
			rolled[k] = r
		}
		r.count += e.count
		r.bytes = satAdd(r.bytes, e.bytes)
		r.qsum = satAdd(r.qsum, e.qsum)
		r.qmax = max(r.qmax, e.qmax)
	}
	keys := make([]aggKey, 0, len(rolled))
	for k := range rolled {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	n := 0
	for i := range viewTags {
		if v.keep&(1<<i) != 0 {
			n++
		}
	}
	// One allocation for all tags and one for all fields of the interval,
	// instead of two per point.
	tags := make([]agent.Tag, 0, n*len(keys))
	fields := make([]agent.Field, 0, 5*len(keys))
	for i := range keys {
		k, val := &keys[i], rolled[keys[i]]
		t0, f0 := len(tags), len(fields)
		// Tags in key order, so that NewPoint need not sort them.
		for d := range viewTags {
			if v.keep&(1<<d) != 0 {
				tags = append(tags, agent.Tag{Key: viewTags[d], Value: k.value(dims(1 << d))})
			}
		}
		fields = append(fields,
			agent.Field{Key: "count", Value: val.count},
			agent.Field{Key: "bytes", Value: val.bytes},
			agent.Field{Key: "queued_s_sum", Value: float64(val.qsum)},
			agent.Field{Key: "queued_s_max", Value: float64(val.qmax)},
			// The interval length travels with the point, so that a sink
			// can give a sum its start and end (OTLP) and a dashboard can
			// turn counts into rates.
			agent.Field{Key: "interval_s", Value: ivSec})
		pts = append(pts, agent.NewPoint(v.name, tags[t0:len(tags):len(tags)], fields[f0:len(fields):len(fields)], ts))
	}
	return pts
}

// value returns the tag value of one dimension.
func (k *aggKey) value(d dims) string {
	switch d {
	case dimBounceCat:
		return k.bounceCat
	case dimDomain:
		return k.domain
	case dimDsnClass:
		return dsnClassTag(k.dsnClass)
	case dimISP:
		return k.isp
	case dimPool:
		return k.pool
	case dimSourceIP:
		return k.sourceIP
	case dimType:
		return k.typ.String()
	case dimVmta:
		return k.vmta
	}
	return ""
}

func compareKeys(x, y aggKey) int {
	return cmp.Or(cmp.Compare(x.typ, y.typ), cmp.Compare(x.dsnClass, y.dsnClass),
		strings.Compare(x.domain, y.domain), strings.Compare(x.isp, y.isp),
		strings.Compare(x.vmta, y.vmta), strings.Compare(x.pool, y.pool),
		strings.Compare(x.sourceIP, y.sourceIP), strings.Compare(x.bounceCat, y.bounceCat))
}

// viewState is a view's admitted domains in a checkpoint, so that a replay
// after a crash folds the very same domains as the first time.
type viewState struct {
	Name    string   `json:"name"`
	Day     int64    `json:"day"`
	Domains []string `json:"domains,omitempty"`
}

func (a *aggregator) viewStates() []viewState {
	var out []viewState
	for _, v := range a.views {
		if v.maxDomains == 0 {
			continue
		}
		s := viewState{Name: v.name, Day: v.day}
		for d := range v.admitted {
			s.Domains = append(s.Domains, d)
		}
		slices.Sort(s.Domains)
		out = append(out, s)
	}
	return out
}

// restoreViews sets each view's admitted domains from a checkpoint; a view
// the checkpoint does not know (added to the configuration since) starts
// with none, and so does every view when the checkpoint has none.
func (a *aggregator) restoreViews(states []viewState) {
	for _, v := range a.views {
		v.day = 0
		clear(v.admitted)
		for _, s := range states {
			if s.Name == v.name {
				v.day = s.Day
				for _, d := range s.Domains {
					v.admitted[d] = struct{}{}
				}
			}
		}
	}
}
