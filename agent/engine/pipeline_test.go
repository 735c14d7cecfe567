package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestPipelineTags(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	p := NewPipeline(PipelineConfig{Server: "mta01", Tags: map[string]string{"dc": "fra1", "server": "not-this-one"}, MaxDomains: 10})
	in := []agent.Point{
		agent.NewPoint("pmta_queue", []agent.Tag{{Key: "vmta", Value: "vmta-gm-011"}, {Key: "domain", Value: "GMail.com."}}, []agent.Field{{Key: "rcp", Value: int64(5)}}, ts),
		agent.NewPoint("pmta_vmta", []agent.Tag{{Key: "vmta", Value: "vmta-gm-011"}}, []agent.Field{{Key: "rcp", Value: int64(5)}}, ts),
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "hotmail.co.uk"}, {Key: "isp", Value: "custom"}}, []agent.Field{{Key: "count", Value: int64(1)}}, ts),
	}
	out := p.Process(in)
	got := string(agent.LineProtocol(out))
	want := "pmta_queue,dc=fra1,domain=gmail.com,isp=google,server=mta01,vmta=vmta-gm-011 rcp=5i 1705332300000000000\n" +
		"pmta_vmta,dc=fra1,server=mta01,vmta=vmta-gm-011 rcp=5i 1705332300000000000\n" +
		"pmta_acct,dc=fra1,domain=hotmail.co.uk,isp=custom,server=mta01 count=1i 1705332300000000000\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if d, _ := in[0].TagValue("domain"); d != "GMail.com." {
		t.Errorf("Process changed its input: domain %q", d)
	}
}

// A map given as ISP is the one used: ISPMap is then ignored, so that the
// tailer and the pipeline can share one.
func TestPipelineUsesTheGivenISPMap(t *testing.T) {
	shared := agent.NewISPMap(map[string]string{"example.net": "shared"})
	p := NewPipeline(PipelineConfig{Server: "s", ISPMap: map[string]string{"example.net": "own"}, ISP: shared})
	out := p.Process([]agent.Point{agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: "example.net"}},
		[]agent.Field{{Key: "rcp", Value: int64(1)}}, time.Unix(1705332300, 0))})
	if v, _ := out[0].TagValue("isp"); v != "shared" {
		t.Errorf("isp tag %q, want the shared map's", v)
	}
}

func TestFoldDomainsKeepsTotals(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	var in []agent.Point
	add := func(domain, vmta string, rcp int64, kbMax float64) {
		in = append(in, agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: domain}, {Key: "vmta", Value: vmta}},
			[]agent.Field{{Key: "rcp", Value: rcp}, {Key: "kb", Value: float64(rcp) / 2}, {Key: "paused", Value: int64(1)}, {Key: "queued_s_max", Value: kbMax}}, ts))
	}
	add("gmail.com", "v1", 100, 1)
	add("yahoo.com", "v1", 90, 2)
	add("small-a.example", "v1", 3, 7)
	add("small-b.example", "v1", 2, 9)
	add("small-c.example", "v2", 1, 4)
	p := NewPipeline(PipelineConfig{Server: "s", MaxDomains: 2})
	out := p.Process(in)
	got := string(agent.LineProtocol(out))
	want := "pmta_queue,domain=gmail.com,isp=google,server=s,vmta=v1 rcp=100i,kb=50.0,paused=1i,queued_s_max=1.0 1705332300000000000\n" +
		"pmta_queue,domain=yahoo.com,isp=yahoo,server=s,vmta=v1 rcp=90i,kb=45.0,paused=1i,queued_s_max=2.0 1705332300000000000\n" +
		"pmta_queue,domain=other,isp=other,server=s,vmta=v1 rcp=5i,kb=2.5,paused=2i,queued_s_max=9.0 1705332300000000000\n" +
		"pmta_queue,domain=other,isp=other,server=s,vmta=v2 rcp=1i,kb=0.5,paused=1i,queued_s_max=4.0 1705332300000000000\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if f := p.Stats()[2]; f.Key != "domains_folded" || f.Value != int64(3) {
		t.Errorf("stats %v, want domains_folded=3", f)
	}
}

func TestPointVolumeIgnoresFlags(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	tests := []struct {
		name   string
		fields []agent.Field
		want   float64
	}{
		{"int rcp", []agent.Field{{Key: "rcp", Value: int64(7)}}, 7},
		{"float rcp", []agent.Field{{Key: "rcp", Value: 2.5}}, 2.5},
		{"count", []agent.Field{{Key: "count", Value: int64(4)}}, 4},
		{"rcp before count", []agent.Field{{Key: "count", Value: int64(4)}, {Key: "rcp", Value: int64(9)}}, 9},
		{"bool rcp falls through to count", []agent.Field{{Key: "rcp", Value: true}, {Key: "count", Value: int64(4)}}, 4},
		{"bool only", []agent.Field{{Key: "rcp", Value: true}}, 0},
		{"string rcp", []agent.Field{{Key: "rcp", Value: "12"}}, 0},
	}
	for _, tt := range tests {
		p := agent.NewPoint("pmta_queue", []agent.Tag{{Key: "domain", Value: "example.com"}}, tt.fields, ts)
		if got := pointVolume(&p); got != tt.want {
			t.Errorf("%s: volume %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPipelineCallsDone(t *testing.T) {
	var got [][]agent.Point
	q := enqueueFunc(func(p []agent.Point) { got = append(got, p) })
	p := NewPipeline(PipelineConfig{Server: "s", MaxDomains: 5}, q, q)
	done := 0
	p.Emit(agent.Batch{Points: []agent.Point{agent.NewPoint("m", nil, []agent.Field{{Key: "f", Value: int64(1)}}, time.Unix(1, 0))}, Done: func() { done++ }})
	if done != 1 || len(got) != 2 {
		t.Fatalf("done=%d enqueued=%d, want 1 and 2", done, len(got))
	}
}

type enqueueFunc func([]agent.Point)

func (f enqueueFunc) Enqueue(p []agent.Point, durable func()) { f(p); durable() }

// 20,000 records with distinct vmta, pool and source IP in one interval made
// 20,000 series from one agent: every tag strangers or configuration can
// multiply is bounded, the sums are kept and the folds counted.
func TestPipelineBoundsEveryMultipliedTag(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	in := make([]agent.Point, 0, 20_000)
	var total int64
	for i := range 20_000 {
		n := int64(1 + i%7)
		total += n
		in = append(in, agent.NewPoint("pmta_acct", []agent.Tag{
			{Key: "type", Value: "d"}, {Key: "domain", Value: fmt.Sprintf("d%d.example", i%3)},
			{Key: "vmta", Value: fmt.Sprintf("vmta-%05d", i)}, {Key: "pool", Value: fmt.Sprintf("pool-%05d", i)},
			{Key: "source_ip", Value: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)},
			{Key: "bounce_cat", Value: fmt.Sprintf("cat-%d", i)},
		}, []agent.Field{{Key: "count", Value: n}, {Key: "queued_s_max", Value: float64(i)}}, ts))
	}
	max := map[string]int{"domain": 500, "vmta": 50, "pool": 20, "source_ip": 100, "bounce_cat": 10, "diag": 100}
	p := NewPipeline(PipelineConfig{Server: "s", MaxDomains: 500, MaxVMTAs: 50, MaxPools: 20, MaxSourceIPs: 100, MaxBounceCats: 10, MaxDiags: 100})
	out := p.Process(in)
	var sum int64
	distinct := map[string]map[string]bool{}
	for _, pt := range out {
		c, _ := pt.FieldValue("count")
		sum += c.(int64)
		for _, tg := range pt.Tags {
			if distinct[tg.Key] == nil {
				distinct[tg.Key] = map[string]bool{}
			}
			distinct[tg.Key][tg.Value] = true
		}
	}
	if sum != total {
		t.Errorf("count sums to %d after folding, want %d", sum, total)
	}
	for tag, limit := range max {
		if n := len(distinct[tag]); n > limit+1 {
			t.Errorf("%s: %d distinct values, cap %d (+ other)", tag, n, limit)
		}
	}
	if len(out) > 3*(50+1) {
		t.Errorf("%d series from one batch", len(out))
	}
	stats := map[string]int64{}
	for _, f := range p.Stats() {
		stats[f.Key], _ = f.Value.(int64)
	}
	for key, want := range map[string]int64{"vmtas_folded": 19_950, "pools_folded": 19_980, "source_ips_folded": 19_900, "bounce_cats_folded": 19_990, "domains_folded": 0} {
		if stats[key] != want {
			t.Errorf("%s = %d, want %d", key, stats[key], want)
		}
	}
	if stats["points_merged"] != int64(20_000-len(out)) {
		t.Errorf("points_merged %d, want %d", stats["points_merged"], 20_000-len(out))
	}
}

// Two values that SafeTag makes equal ("caf\xe9" and "caf\xe8" both become
// "caf\uFFFD") must not become two points of one series, one overwriting the
// other in InfluxDB: they are merged with their sums.
func TestPipelineMergesValuesMadeEqual(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	in := []agent.Point{
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "caf\xe9.com"}, {Key: "type", Value: "d"}}, []agent.Field{{Key: "count", Value: int64(2)}, {Key: "queued_s_max", Value: 5.0}}, ts),
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "caf\xe8.com"}, {Key: "type", Value: "d"}}, []agent.Field{{Key: "count", Value: int64(3)}, {Key: "queued_s_max", Value: 4.0}}, ts),
		agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "ok.com"}, {Key: "type", Value: "d"}}, []agent.Field{{Key: "count", Value: int64(1)}}, ts),
	}
	p := NewPipeline(PipelineConfig{Server: "s"})
	got := string(agent.LineProtocol(p.Process(in)))
	want := "pmta_acct,domain=caf\uFFFD.com,isp=other,server=s,type=d count=5i,queued_s_max=5.0 1705332300000000000\n" +
		"pmta_acct,domain=ok.com,isp=other,server=s,type=d count=1i 1705332300000000000\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Every tag the pipeline can bound has its cap, and no cap names a tag the
// pipeline does not know (which would leave that tag unbounded).
func TestPipelineCapsNameTheFoldedTags(t *testing.T) {
	caps := DefaultPipelineConfig().maxValues()
	if len(caps) != len(foldedTags) {
		t.Fatalf("caps %v, folded tags %v", caps, foldedTags)
	}
	for _, tag := range foldedTags {
		if caps[tag] < 1 {
			t.Errorf("no cap for %q in %v", tag, caps)
		}
	}
}

// Each measurement is ranked on its own, and "" and "other" are no values:
// a capped view's admitted domains stay whatever another measurement holds.
func TestFoldPerMeasurement(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	var in []agent.Point
	add := func(meas, domain string, n int64) {
		tags := []agent.Tag{{Key: "type", Value: "d"}}
		if domain != "-" {
			tags = append(tags, agent.Tag{Key: "domain", Value: domain})
		}
		in = append(in, agent.NewPoint(meas, tags, []agent.Field{{Key: "count", Value: n}}, ts))
	}
	add("pmta_acct_domain", "a.example", 1)
	add("pmta_acct_domain", "b.example", 1)
	add("pmta_acct_domain", "other", 50)
	add("pmta_acct_domain", "", 60)
	add("pmta_acct_full", "c.example", 9)
	add("pmta_acct_full", "d.example", 8)
	add("pmta_acct_full", "e.example", 7)
	p := NewPipeline(PipelineConfig{Server: "s", MaxDomains: 2})
	got := map[string]int64{}
	for _, pt := range p.Process(in) {
		d, _ := pt.TagValue("domain")
		c, _ := pt.FieldValue("count")
		got[pt.Measurement+" "+d] += c.(int64)
	}
	want := map[string]int64{
		"pmta_acct_domain a.example": 1, "pmta_acct_domain b.example": 1, "pmta_acct_domain other": 50, "pmta_acct_domain ": 60,
		"pmta_acct_full c.example": 9, "pmta_acct_full d.example": 8, "pmta_acct_full other": 7,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if f := p.Stats()[2]; f.Key != "domains_folded" || f.Value != int64(1) {
		t.Errorf("stats %v, want domains_folded=1", f)
	}
}

// Verdicts are no sums: their source IPs and pools are never folded, which
// would add two IPs' verdicts and percentages into one point.
func TestVerdictsNotFolded(t *testing.T) {
	ts := time.Unix(1705332300, 0)
	var in []agent.Point
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		in = append(in, agent.NewPoint("pmta_verdict", []agent.Tag{{Key: "isp", Value: "google"}, {Key: "pool", Value: "p" + ip},
			{Key: "scope", Value: "ip"}, {Key: "source_ip", Value: ip}}, []agent.Field{{Key: "verdict", Value: int64(1)}, {Key: "attempts", Value: int64(300)}}, ts))
	}
	p := NewPipeline(PipelineConfig{Server: "s", MaxSourceIPs: 1, MaxPools: 1})
	out := p.Process(in)
	if len(out) != 3 {
		t.Fatalf("%d points, want 3", len(out))
	}
	for _, pt := range out {
		ip, _ := pt.TagValue("source_ip")
		v, _ := pt.FieldValue("verdict")
		if ip == "other" || v != int64(1) {
			t.Errorf("folded: %v", pt)
		}
	}
}
