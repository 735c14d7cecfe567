package impact

import (
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// A known report becomes one point per row: the tags, every field with its
// type, the change's time.
func TestPoints(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	row := func(kind, name string, before, after Counts, focus bool) Row {
		return Row{Kind: kind, Name: name, Before: before, After: after, Focus: focus, Verdict: Compare(before, after, Options{})}
	}
	rep := Report{At: at, Window: "2h0m0s", BeforeFrom: at.Add(-2 * time.Hour), AfterTo: at.Add(2 * time.Hour), Rows: []Row{
		row("isp", "google", Counts{1000, 200, 10}, Counts{1000, 100, 40}, false),
		row("isp", "yahoo", Counts{100, 10, 0}, Counts{1000, 100, 0}, false),
		row("isp", "hotmail", Counts{1000, 100, 0}, Counts{1000, 100, 0}, false),
		row("domain", "gmail.com", Counts{800, 160, 8}, Counts{800, 80, 30}, true),
		// A <domain $hotmail> with unknown domains is the isp row itself,
		// touched; a target named twice is one point.
		row("isp", "hotmail", Counts{1000, 100, 0}, Counts{1000, 100, 0}, true),
		row("domain", "gmail.com", Counts{800, 160, 8}, Counts{800, 80, 30}, true),
		row("vmta", "bad\x00\xffname", Counts{}, Counts{}, true),
	}}
	rep.Rows[2].Flag = "" // an ISP row of a report with a focus carries no flag
	pts := Points(rep, "mta01")
	if len(pts) != 5 {
		t.Fatalf("%d points, want 5:\n%s", len(pts), agent.LineProtocol(pts))
	}
	type want struct {
		tags   string
		ints   map[string]int64
		floats map[string]float64
	}
	for i, w := range []want{
		{"kind=isp name=google server=mta01 touched=no",
			map[string]int64{"before_attempts": 1000, "after_attempts": 1000, "verdict": CodeBetter, "effect_absent": 0, "window_s": 7200},
			map[string]float64{"before_deferral_pct": 20, "after_deferral_pct": 10, "before_bounce_pct": 1, "after_bounce_pct": 4}},
		{"kind=isp name=yahoo server=mta01 touched=no",
			map[string]int64{"before_attempts": 100, "after_attempts": 1000, "verdict": CodeTooFew, "effect_absent": 0, "window_s": 7200},
			map[string]float64{"before_deferral_pct": 10, "after_deferral_pct": 10}},
		{"kind=isp name=hotmail server=mta01 touched=yes",
			map[string]int64{"verdict": CodeNoChange, "effect_absent": 1},
			map[string]float64{"deferral_z": 0, "bounce_z": 0}},
		{"kind=domain name=gmail.com server=mta01 touched=yes",
			map[string]int64{"before_attempts": 800, "after_attempts": 800, "verdict": CodeBetter, "effect_absent": 0},
			map[string]float64{"before_deferral_pct": 20, "after_deferral_pct": 10}},
		{"kind=vmta name=bad\x00\xffname server=mta01 touched=yes", // checked through SafeTag below
			map[string]int64{"before_attempts": 0, "verdict": CodeTooFew}, nil},
	} {
		p := pts[i]
		if p.Measurement != Measurement || !p.Time.Equal(at) {
			t.Errorf("point %d: %s at %s", i, p.Measurement, p.Time)
		}
		var tags []string
		for _, tg := range p.Tags {
			tags = append(tags, tg.Key+"="+tg.Value)
			if !agent.IsSafeTag(tg.Value) {
				t.Errorf("point %d: tag %s=%q is not safe", i, tg.Key, tg.Value)
			}
		}
		if i < 4 && strings.Join(tags, " ") != w.tags {
			t.Errorf("point %d: tags %s, want %s", i, strings.Join(tags, " "), w.tags)
		}
		if len(p.Fields) != 11 {
			t.Errorf("point %d: %d fields, want 11", i, len(p.Fields))
		}
		for k, v := range w.ints {
			if got, _ := p.FieldValue(k); got != v {
				t.Errorf("point %d: %s = %v (%T), want %d", i, k, got, got, v)
			}
		}
		for k, v := range w.floats {
			if got, ok := p.FieldValue(k); !ok || got.(float64) < v-1e-9 || got.(float64) > v+1e-9 {
				t.Errorf("point %d: %s = %v, want %v", i, k, got, v)
			}
		}
	}
	if z, _ := pts[0].FieldValue("deferral_z"); z.(float64) > -ZCritical {
		t.Errorf("google's deferral_z %v: the fall from 20 %% to 10 %% of 1000 is significant", z)
	}
	if name, _ := pts[4].TagValue("name"); name != agent.SafeTag("bad\x00\xffname") {
		t.Errorf("name %q, want it through SafeTag", name)
	}

	// The same report again is the same points: a rerun overwrites.
	again := Points(rep, "mta01")
	if string(agent.LineProtocol(again)) != string(agent.LineProtocol(pts)) {
		t.Error("two calls differ")
	}
	if len(Points(Report{At: at}, "mta01")) != 0 {
		t.Error("points from a report without rows")
	}
}

func TestCode(t *testing.T) {
	for o, want := range map[Outcome]int64{Better: 1, NoChange: 0, Worse: 2, TooFew: -1, "": -1} {
		if got := Code(o); got != want {
			t.Errorf("Code(%q) = %d, want %d", o, got, want)
		}
	}
}
