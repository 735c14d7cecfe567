package impact

import (
	"math"
	"testing"
)

func TestCompare(t *testing.T) {
	c := func(n, deferred, bounced int64) Counts {
		return Counts{Attempts: n, Deferrals: deferred, Bounces: bounced}
	}
	for _, tc := range []struct {
		name          string
		before, after Counts
		min           int64
		want, bounces Outcome
		z             float64 // the deferral z, to 0.05; NaN: not checked
		flag          bool
	}{
		{"halved", c(1000, 100, 10), c(1000, 50, 10), 0, Better, NoChange, -4.24, false},
		{"slightly fewer", c(1000, 100, 10), c(1000, 95, 10), 0, NoChange, NoChange, -0.38, true},
		{"doubled", c(1000, 50, 10), c(1000, 100, 40), 0, Worse, Worse, 4.24, true},
		{"equal rates", c(2000, 200, 20), c(1000, 100, 10), 0, NoChange, NoChange, 0, true},
		{"none deferred", c(1000, 0, 0), c(1000, 0, 0), 0, NoChange, NoChange, 0, true},
		{"150 attempts after", c(1000, 100, 0), c(150, 0, 0), 0, TooFew, TooFew, math.NaN(), false},
		{"150 before", c(150, 100, 0), c(1000, 0, 0), 0, TooFew, TooFew, math.NaN(), false},
		{"no attempts", c(0, 0, 0), c(0, 0, 0), 0, TooFew, TooFew, 0, false},
		{"no attempts after", c(1000, 100, 0), c(0, 0, 0), 0, TooFew, TooFew, 0, false},
		{"at the minimum", c(200, 40, 0), c(200, 10, 0), 0, Better, NoChange, -4.54, false},
		{"a lower minimum", c(150, 30, 0), c(150, 5, 0), 100, Better, NoChange, math.NaN(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Compare(tc.before, tc.after, Options{MinAttempts: tc.min})
			if v.Outcome != tc.want || v.Deferrals.Outcome != tc.want || v.Bounces.Outcome != tc.bounces {
				t.Errorf("verdict %q (deferrals %q, bounces %q), want %q, bounces %q", v.Outcome, v.Deferrals.Outcome, v.Bounces.Outcome, tc.want, tc.bounces)
			}
			if !math.IsNaN(tc.z) && math.Abs(v.Deferrals.Z-tc.z) > 0.05 {
				t.Errorf("z = %.3f, want %.2f", v.Deferrals.Z, tc.z)
			}
			if math.IsNaN(v.Deferrals.Z) || math.IsNaN(v.Bounces.Z) || math.IsNaN(v.Deferrals.BeforePct) {
				t.Errorf("NaN in %+v", v)
			}
			if got := v.Flag == EffectAbsent; got != tc.flag {
				t.Errorf("flag %q, want flagged %v", v.Flag, tc.flag)
			}
		})
	}
	v := Compare(c(1000, 100, 20), c(1000, 50, 5), Options{})
	if v.Deferrals.BeforePct != 10 || v.Deferrals.AfterPct != 5 || v.Bounces.BeforePct != 2 || v.Bounces.AfterPct != 0.5 {
		t.Errorf("rates %+v", v)
	}
}

func TestFocusOf(t *testing.T) {
	macros := map[string]string{"gmail.com": "gmail", "googlemail.com": "gmail", "yahoo.com": "yahoo"}
	for _, tc := range []struct {
		block string
		want  string
	}{
		{"<domain gmail.com>", "domain gmail.com [gmail.com]"},
		{"<domain $gmail>", "domain $gmail [gmail.com googlemail.com]"},
		{"<domain $hotmail>", "isp hotmail [hotmail]"},
		{"<virtual-mta vmta-gm-011>", "vmta vmta-gm-011 [vmta-gm-011]"},
		{"<virtual-mta-pool pool-gmail> <domain gmail.com>", "pool pool-gmail [pool-gmail]; domain gmail.com [gmail.com]"},
		{"<domain *>", ""},
		{"<acct-file /var/log/pmta/acct.csv>", ""},
		{"", ""},
	} {
		var got string
		for i, x := range FocusOf(tc.block, macros) {
			if i > 0 {
				got += "; "
			}
			got += x.Kind + " " + x.Name + " ["
			for j, v := range x.Values {
				if j > 0 {
					got += " "
				}
				got += v
			}
			got += "]"
		}
		if got != tc.want {
			t.Errorf("FocusOf(%q) = %q, want %q", tc.block, got, tc.want)
		}
	}
	if _, err := ParseTarget("isp=google"); err == nil {
		t.Error("ParseTarget(isp=google) took it")
	}
	// The name lowercased, the value as written: Analyze makes it safe and
	// lowercases it as it does the records'.
	if x, err := ParseTarget("domain=Gmail.com"); err != nil || x.Kind != "domain" || x.Name != "gmail.com" || x.Values[0] != "Gmail.com" {
		t.Errorf("ParseTarget(domain=Gmail.com) = %+v, %v", x, err)
	}
}

// A domain-macro line changed at the top level (a domain added to the gmail
// group) focuses on the macro's domains; other top-level directives on
// nothing.
func TestFocusOfTopLevelMacro(t *testing.T) {
	macros := map[string]string{"gmail.com": "gmail", "googlemail.com": "gmail", "gmail.example": "gmail"}
	f := FocusOfChanges([]Change{
		{Directive: "domain-macro", Key: "Gmail", Text: "domain-macro gmail gmail.com, googlemail.com → gmail.com, googlemail.com, gmail.example"},
		{Directive: "http-mgmt-port", Text: "http-mgmt-port 8080 → 8081"},
		{Block: "<domain $gmail>", Directive: "max-msg-rate", Text: "<domain $gmail> max-msg-rate 250/h → 500/h"},
	}, macros)
	if len(f) != 1 || f[0].Kind != "domain" || f[0].Name != "$gmail" || len(f[0].Values) != 3 {
		t.Fatalf("focus %+v, want the three domains of $gmail once", f)
	}
}
