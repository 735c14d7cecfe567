package acct

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// viewRec is a record with every dimension set, for the view tests.
func viewRec(r *rand.Rand, ts int64, nDomains int) *record {
	types := []recType{typeD, typeB, typeT, typeTQ, typeR, typeF}
	dom := fmt.Sprintf("d%03d.example", min(r.IntN(nDomains), r.IntN(nDomains)))
	ip := r.IntN(7)
	return &record{
		typ: types[r.IntN(len(types))], timeLogged: ts, domain: []byte(dom),
		vmta: fmt.Appendf(nil, "vmta-%d", ip), pool: fmt.Appendf(nil, "pool-%d", ip%3),
		sourceIP: fmt.Appendf(nil, "192.0.2.%d", ip), bounceCat: []byte([]string{"", "bad-mailbox", "policy-related"}[r.IntN(3)]),
		dsnStatus: []byte([]string{"2.0.0 (ok)", "4.2.1 (later)", "5.1.1 (no)"}[r.IntN(3)]), size: int64(r.IntN(1000)),
		hasQueued: true, timeQueued: ts - int64(r.IntN(600)),
	}
}

// Every view sums every record exactly, its queueing sums and maxima too,
// whichever tags it keeps and however many domains it folds.
func TestViewsSumExactly(t *testing.T) {
	views := append(DefaultViews(), FullView(),
		View{Name: "pmta_acct_pool", Tags: []string{"type", "pool"}},
		View{Name: "pmta_acct_tiny", Tags: []string{"type", "domain"}, MaxDomains: 3})
	a := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), views...)
	r := rand.New(rand.NewPCG(1, 2))
	var bytes, qsum, qmax int64
	const n = 5000
	for i := range n {
		rc := viewRec(r, 1_000_000+int64(i/50), 40)
		a.add(rc)
		bytes += rc.size
		q := rc.timeLogged - rc.timeQueued
		qsum += q
		qmax = max(qmax, q)
	}
	pts, _ := a.closeAll()
	type sums struct{ count, bytes, qsum, qmax int64 }
	got := map[string]*sums{}
	tagsOf := map[string][]string{}
	for _, p := range pts {
		if p.Measurement == measDiag {
			continue
		}
		s := got[p.Measurement]
		if s == nil {
			s = &sums{}
			got[p.Measurement] = s
		}
		c, _ := p.FieldValue("count")
		b, _ := p.FieldValue("bytes")
		qs, _ := p.FieldValue("queued_s_sum")
		qm, _ := p.FieldValue("queued_s_max")
		s.count += c.(int64)
		s.bytes += b.(int64)
		s.qsum += int64(qs.(float64))
		s.qmax = max(s.qmax, int64(qm.(float64)))
		var keys []string
		for _, tg := range p.Tags {
			keys = append(keys, tg.Key)
		}
		tagsOf[p.Measurement] = keys
	}
	for _, v := range views {
		s := got[v.Name]
		if s == nil {
			t.Fatalf("view %s emitted nothing", v.Name)
		}
		if *s != (sums{n, bytes, qsum, qmax}) {
			t.Errorf("view %s sums %+v, want {%d %d %d %d}", v.Name, *s, n, bytes, qsum, qmax)
		}
		want := slices.Clone(v.Tags)
		slices.Sort(want)
		if !slices.Equal(tagsOf[v.Name], want) {
			t.Errorf("view %s has tags %v, want %v", v.Name, tagsOf[v.Name], want)
		}
	}
}

// A capped view admits a day's domains by volume, interval by interval,
// folds the rest into "other" for the rest of the day, and starts over on
// the next UTC day; a replay from a checkpoint folds the very same domains.
func TestViewDomainCapPerDay(t *testing.T) {
	v := View{Name: "pmta_acct_domain", Tags: []string{"type", "domain"}, MaxDomains: 2}
	a := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), v)
	day := int64(19737 * secondsPerDay) // 2024-01-15 00:00 UTC
	add := func(ts int64, domain string, n int) {
		for range n {
			a.add(&record{typ: typeD, timeLogged: ts, domain: []byte(domain)})
		}
	}
	domains := func(pts []agent.Point) map[string]int64 {
		m := map[string]int64{}
		for _, p := range pts {
			if p.Measurement == v.Name {
				d, _ := p.TagValue("domain")
				c, _ := p.FieldValue("count")
				m[d] += c.(int64)
			}
		}
		return m
	}
	add(day+5, "small.example", 1)
	add(day+5, "big.example", 9)
	add(day+5, "mid.example", 5)
	pts, _ := a.closeBefore(day + 10)
	if got := fmt.Sprint(domains(pts)); got != "map[big.example:9 mid.example:5 other:1]" {
		t.Fatalf("first interval: %s", got)
	}
	saved := a.state()
	// Later in the day a larger newcomer finds the day full.
	add(day+15, "huge.example", 100)
	add(day+15, "small.example", 1)
	add(day+15, "mid.example", 1)
	pts, _ = a.closeBefore(day + 20)
	first := fmt.Sprint(domains(pts))
	if first != "map[mid.example:1 other:101]" {
		t.Fatalf("second interval: %s", first)
	}
	// The same interval replayed from the checkpoint folds the same way.
	b := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), v)
	if err := b.restore(saved); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name string
		n    int
	}{{"huge.example", 100}, {"small.example", 1}, {"mid.example", 1}} {
		for range d.n {
			b.add(&record{typ: typeD, timeLogged: day + 15, domain: []byte(d.name)})
		}
	}
	pts, _ = b.closeBefore(day + 20)
	if got := fmt.Sprint(domains(pts)); got != first {
		t.Fatalf("replayed: %s, first time %s", got, first)
	}
	// A new UTC day admits afresh.
	add(day+secondsPerDay+1, "huge.example", 3)
	add(day+secondsPerDay+1, "small.example", 2)
	add(day+secondsPerDay+1, "big.example", 1)
	pts, _ = a.closeAll()
	if got := fmt.Sprint(domains(pts)); got != "map[huge.example:3 other:1 small.example:2]" {
		t.Fatalf("next day: %s", got)
	}
}

func TestViewsValidate(t *testing.T) {
	cases := []struct {
		views []View
		want  string
	}{
		{nil, "acct.views: must list at least one view"},
		{[]View{{Name: "acct", Tags: []string{"type"}}}, `views[0].name: "acct" must be pmta_acct or start with pmta_acct_`},
		{[]View{{Name: "pmta_acct_diag", Tags: []string{"type"}}}, `views[0].name: "pmta_acct_diag" is the measurement of the dsnDiag patterns`},
		{[]View{{Name: "pmta_acct x", Tags: []string{"type"}}}, `views[0].name: "pmta_acct x" must be pmta_acct or start with pmta_acct_`},
		{[]View{{Name: "pmta_acct_a b", Tags: []string{"type"}}}, `views[0].name: "pmta_acct_a b": use letters, digits and underscores`},
		{[]View{{Name: "pmta_acct", Tags: []string{"type"}}, {Name: "pmta_acct", Tags: []string{"type"}}}, `views[1].name: "pmta_acct" is named twice`},
		{[]View{{Name: "pmta_acct", Tags: []string{"type", "mx"}}}, `views[0].tags: "mx" is no accounting dimension`},
		{[]View{{Name: "pmta_acct", Tags: []string{"type", "isp", "isp"}}}, `views[0].tags: "isp" is listed twice`},
		{[]View{{Name: "pmta_acct", Tags: []string{"isp"}}}, `views[0].tags: must include type`},
		{[]View{{Name: "pmta_acct", Tags: []string{"type"}, MaxDomains: 5}}, `views[0].max_domains: is set but the view has no domain tag`},
		{[]View{{Name: "pmta_acct", Tags: []string{"type", "domain"}, MaxDomains: -1}}, `views[0].max_domains: must be 0 (no cap) or more`},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Views = c.views
		var p problems
		validateViews(&p, cfg.Views)
		var msgs []string
		for _, e := range p {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if want := strings.TrimPrefix(c.want, "acct."); !strings.Contains(got, want) {
			t.Errorf("%+v: got %q, want %q", c.views, got, want)
		}
	}
	var p problems
	validateViews(&p, append(DefaultViews(), FullView()))
	if len(p) != 0 {
		t.Errorf("the default and full views do not validate: %v", p)
	}
}

// Backfill rolls up into the configured views, and refuses bad ones.
func TestBackfillViews(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acct.csv")
	data, recs := genFile(1, 500, testStart, time.Second, true)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var pts []agent.Point
	opts := BackfillOptions{Config: Config{Views: []View{FullView()}}}
	if _, err := Backfill(context.Background(), []string{path}, opts, agent.NewISPMap(nil),
		func(b agent.Batch) { pts = append(pts, b.Points...) }, nil); err != nil {
		t.Fatal(err)
	}
	got := map[tallyKey]int64{}
	for _, p := range pts {
		switch p.Measurement {
		case "pmta_acct_full":
			typ, _ := p.TagValue("type")
			dom, _ := p.TagValue("domain")
			vm, _ := p.TagValue("vmta")
			c, _ := p.FieldValue("count")
			got[tallyKey{typ, dom, vm}] += c.(int64)
		case measDiag:
		default:
			t.Fatalf("a %s point from a backfill with the full view only", p.Measurement)
		}
	}
	want := map[tallyKey]int64{}
	for _, r := range recs {
		want[tallyKey{r.typ, r.domain, r.vmta}]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("full view %v, want %v", got, want)
	}
	opts = BackfillOptions{Config: Config{Views: []View{{Name: "pmta_acct", Tags: []string{"isp"}}}}}
	if _, err := Backfill(context.Background(), []string{path}, opts, agent.NewISPMap(nil), func(agent.Batch) {}, nil); err == nil ||
		!strings.Contains(err.Error(), "views[0].tags: must include type") {
		t.Errorf("a view without type: %v", err)
	}
}

// appendState writes what json.Marshal writes for the state, whatever the
// tag values hold: escapes, HTML characters, invalid UTF-8, long values.
func TestAppendStateIsJSON(t *testing.T) {
	views := append(DefaultViews(), View{Name: "pmta_acct_x", Tags: []string{"type", "domain"}, MaxDomains: 3})
	a := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), views...)
	odd := []string{"a<b>&c.example", "q\"uote\\.example", "tab\there", "line\u2028sep", "bad\xff.example", "é.example",
		strings.Repeat("long", 100), "ctl\x01\x1f", "gmail.com", ""}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		rc := viewRec(r, 1_000_000+int64(i/40), 30)
		rc.domain = []byte(odd[r.IntN(len(odd))])
		if r.IntN(3) == 0 {
			rc.dsnDiag = []byte("smtp;550 " + odd[r.IntN(len(odd))])
		}
		a.add(rc)
	}
	a.closeBefore(1_000_000 + 20)
	want, err := json.Marshal(a.state())
	if err != nil {
		t.Fatal(err)
	}
	if got := a.appendState([]byte("x")); string(got[1:]) != string(want) || got[0] != 'x' {
		t.Errorf("appendState:\n%.600s\njson.Marshal:\n%.600s", got[1:], want)
	}
	// And it restores to the same state.
	var s aggState
	if err := json.Unmarshal(a.appendState(nil), &s); err != nil {
		t.Fatal(err)
	}
	b := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), views...)
	if err := b.restore(s); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(b.state()); string(again) != string(want) {
		t.Error("the state did not survive a round trip")
	}
	for _, s := range append(odd, "\b\f\n\r\u2029\x7f") {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, json.Marshal %s", s, got, want)
		}
	}
}

// Records without dlvSourceIp or vmtaPool take them from the vmta maps
// PowerMTA's configuration gives; records that carry them keep their own.
func TestFillFromVMTAMaps(t *testing.T) {
	a := newAggregator(10*time.Second, 20, agent.NewISPMap(nil), View{Name: "pmta_acct", Tags: []string{"type", "vmta", "pool", "source_ip"}})
	a.fillFrom(map[string]string{"v1": "192.0.2.1"}, map[string]string{"v1": "pool-a"})
	a.add(&record{typ: typeD, timeLogged: 1000, vmta: []byte("v1")})
	a.add(&record{typ: typeD, timeLogged: 1000, vmta: []byte("v1"), sourceIP: []byte("192.0.2.9"), pool: []byte("pool-z")})
	a.add(&record{typ: typeD, timeLogged: 1000, vmta: []byte("v2")})
	pts, _ := a.closeAll()
	if got := sortedLP(pts); got != "pmta_acct,pool=pool-a,source_ip=192.0.2.1,type=d,vmta=v1 count=1i,bytes=0i,queued_s_sum=0.0,queued_s_max=0.0,interval_s=10i 1000000000000\n"+
		"pmta_acct,pool=pool-z,source_ip=192.0.2.9,type=d,vmta=v1 count=1i,bytes=0i,queued_s_sum=0.0,queued_s_max=0.0,interval_s=10i 1000000000000\n"+
		"pmta_acct,type=d,vmta=v2 count=1i,bytes=0i,queued_s_sum=0.0,queued_s_max=0.0,interval_s=10i 1000000000000\n" {
		t.Errorf("got\n%s", got)
	}
}
