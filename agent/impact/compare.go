// Package impact measures what a configuration change did to delivery: it
// compares the deferral and bounce rates of the accounting records in a
// window before the change with those in a window after, per ISP and for
// what the change touched (a domain, a vmta, a pool), and says whether the
// difference is more than chance.
//
// The test is a two-sided two-proportion z-test with a pooled proportion:
// with n₁, n₂ attempts (d + b + t records) and x₁, x₂ deferrals (t) before
// and after, p = (x₁+x₂)/(n₁+n₂) and
//
//	z = (x₂/n₂ − x₁/n₁) / √(p(1−p)(1/n₁ + 1/n₂))
//
// |z| ≥ 2.58 (p < 0.01) is a difference: better when the rate fell, worse
// when it rose; below that, no change. Bounces (b) are tested the same way.
// Either side with fewer attempts than the minimum volume (default 200)
// gives "too few": at small volumes the normal approximation the test
// rests on does not hold, and one bad minute decides the answer.
package impact

import "github.com/pmta-agent/pmta-agent/agent/stats"

// Outcome is the result of one test.
type Outcome string

// The outcomes.
const (
	Better   Outcome = "better"
	NoChange Outcome = "no change"
	Worse    Outcome = "worse"
	TooFew   Outcome = "too few"
)

// ZCritical is the |z| from which a difference counts: 2.58, a two-sided
// p < 0.01.
const ZCritical = 2.58

// DefaultMinAttempts is the minimum volume of each side by default.
const DefaultMinAttempts = 200

// EffectAbsent is the flag of a comparison whose deferrals did not fall,
// and Explanation what it means, in the words of the runbook.
const (
	EffectAbsent = "expected effect absent"
	Explanation  = "A change that was expected to reduce deferrals but shows no change (or increased deferrals) " +
		"indicates either the change addressed the wrong variable, or a confounding factor."
)

// Counts are the accounting records of one side of a comparison.
type Counts struct {
	Attempts  int64 `json:"attempts"`  // d + b + t records
	Deferrals int64 `json:"deferrals"` // t records
	Bounces   int64 `json:"bounces"`   // b records
}

// Add returns c + o.
func (c Counts) Add(o Counts) Counts {
	return Counts{Attempts: c.Attempts + o.Attempts, Deferrals: c.Deferrals + o.Deferrals, Bounces: c.Bounces + o.Bounces}
}

// Options set the test, and Analyze's reading.
type Options struct {
	// MinAttempts is the minimum volume of each side (DefaultMinAttempts
	// when 0 or less).
	MinAttempts int64
	// SourceIPs and Pools fill in the vmta's pool for records without
	// vmtaPool, as acct.Config's do (Analyze only).
	SourceIPs, Pools map[string]string
}

// Test is one rate compared: in percent before and after, the z statistic
// (0 when a side has no attempts or the rates are all 0 % or all 100 %) and
// the outcome.
type Test struct {
	BeforePct float64 `json:"before_pct"`
	AfterPct  float64 `json:"after_pct"`
	Z         float64 `json:"z"`
	Outcome   Outcome `json:"verdict"`
}

// Verdict is a comparison: the deferral and the bounce tests, the headline
// outcome (the deferrals') and the flag, EffectAbsent or "".
type Verdict struct {
	Outcome   Outcome `json:"verdict"`
	Deferrals Test    `json:"deferrals"`
	Bounces   Test    `json:"bounces"`
	Flag      string  `json:"flag,omitempty"`
}

// Compare tests the deferral and bounce rates of after against before.
func Compare(before, after Counts, opts Options) Verdict {
	minN := opts.MinAttempts
	if minN <= 0 {
		minN = DefaultMinAttempts
	}
	enough := before.Attempts >= minN && after.Attempts >= minN
	v := Verdict{
		Deferrals: test(before.Attempts, before.Deferrals, after.Attempts, after.Deferrals, enough),
		Bounces:   test(before.Attempts, before.Bounces, after.Attempts, after.Bounces, enough),
	}
	v.Outcome = v.Deferrals.Outcome
	if v.Outcome == NoChange || v.Outcome == Worse {
		v.Flag = EffectAbsent
	}
	return v
}

// test is the pooled two-proportion z-test of x2/n2 against x1/n1.
func test(n1, x1, n2, x2 int64, enough bool) Test {
	var t Test
	if n1 > 0 {
		t.BeforePct = 100 * float64(x1) / float64(n1)
	}
	if n2 > 0 {
		t.AfterPct = 100 * float64(x2) / float64(n2)
	}
	t.Z = stats.PooledZ(n1, x1, n2, x2)
	switch {
	case !enough:
		t.Outcome = TooFew
	case t.Z <= -ZCritical:
		t.Outcome = Better
	case t.Z >= ZCritical:
		t.Outcome = Worse
	default:
		t.Outcome = NoChange
	}
	return t
}
