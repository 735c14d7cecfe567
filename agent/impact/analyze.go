package impact

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
)

// TestStated is the test, said in every report.
const TestStated = "two-proportion z-test (pooled), two-sided, |z| ≥ 2.58 (99 %), on the deferral rate (headline) and the bounce rate"

// Row is one comparison: an ISP, or a Target of the focus.
type Row struct {
	Kind   string `json:"kind"` // "isp", or the Target's kind
	Name   string `json:"name"`
	Before Counts `json:"before"`
	After  Counts `json:"after"`
	Verdict
	Focus bool `json:"focus"` // a row of the focus, not of every ISP
}

// Report is what Analyze found.
type Report struct {
	At          time.Time `json:"at"`
	Window      string    `json:"window"`
	BeforeFrom  time.Time `json:"before_from"`
	AfterTo     time.Time `json:"after_to"`
	Test        string    `json:"test"`
	MinAttempts int64     `json:"min_attempts"`
	Focus       Focus     `json:"focus"`
	Rows        []Row     `json:"rows"`
	// Explanation is Explanation when a row carries the EffectAbsent flag.
	Explanation string `json:"flag_explanation,omitempty"`
	// Notes say what limits the report: an after window that reaches past
	// the clock.
	Notes   []string `json:"notes,omitempty"`
	Records int64    `json:"records_read"` // every record of the files
	Files   int      `json:"files"`
}

// Analyze reads the accounting files whole (acct.Backfill) and compares the
// records logged in [at−window, at) with those in [at, at+window), per ISP
// and for each Target of focus. With a focus only its rows carry the
// EffectAbsent flag (the other ISPs were not meant to change); without one,
// every row may. at is taken up to the next whole second
// (records carry whole seconds); window must be whole seconds. An
// unreadable file is reported in the error after the others have been read.
func Analyze(ctx context.Context, files []string, at time.Time, window time.Duration, focus Focus,
	isp *agent.ISPMap, opts Options) (Report, error) {
	if window < time.Second || window%time.Second != 0 {
		return Report{}, fmt.Errorf("window %s: want whole seconds, at least 1s", window)
	}
	if opts.MinAttempts <= 0 {
		opts.MinAttempts = DefaultMinAttempts
	}
	at = ceilSecond(at)
	atS, w := at.Unix(), int64(window/time.Second)

	// The points carry their interval's start: an interval that divides the
	// window, the minute and at's offset in it never straddles a boundary.
	iv := gcd(gcd(w, 60), ((atS%60)+60)%60)
	views := []acct.View{{Name: "pmta_acct", Tags: []string{"type", "isp"}}}
	for _, k := range []string{"domain", "vmta", "pool"} {
		if slices.ContainsFunc(focus, func(t Target) bool { return t.Kind == k }) {
			views = append(views, acct.View{Name: "pmta_acct_" + k, Tags: []string{"type", k}})
		}
	}
	tagOf := map[string]string{"pmta_acct": "isp", "pmta_acct_domain": "domain", "pmta_acct_vmta": "vmta", "pmta_acct_pool": "pool"}

	type side struct{ before, after Counts }
	sums := map[[2]string]*side{} // (kind, lower-case value)
	emit := func(b agent.Batch) {
		for i := range b.Points {
			p := &b.Points[i]
			kind, ok := tagOf[p.Measurement]
			if !ok {
				continue
			}
			ts := p.Time.Unix()
			if ts < atS-w || ts >= atS+w {
				continue
			}
			typ, _ := p.TagValue("type")
			val, _ := p.TagValue(kind)
			n, _ := p.FieldValue("count")
			c, _ := n.(int64)
			var add Counts
			switch typ {
			case "d":
				add = Counts{Attempts: c}
			case "b":
				add = Counts{Attempts: c, Bounces: c}
			case "t":
				add = Counts{Attempts: c, Deferrals: c}
			default:
				continue
			}
			key := [2]string{kind, strings.ToLower(val)}
			s := sums[key]
			if s == nil {
				s = &side{}
				sums[key] = s
			}
			if ts < atS {
				s.before = s.before.Add(add)
			} else {
				s.after = s.after.Add(add)
			}
		}
	}
	cfg := acct.Config{Interval: time.Duration(iv) * time.Second, Views: views, SourceIPs: opts.SourceIPs, Pools: opts.Pools}
	st, err := acct.Backfill(ctx, files, acct.BackfillOptions{Config: cfg}, isp, emit, nil)
	rep := Report{
		At: at, Window: window.String(), BeforeFrom: at.Add(-window), AfterTo: at.Add(window),
		Test: TestStated, MinAttempts: opts.MinAttempts, Focus: focus, Records: st.Records, Files: st.Files,
	}
	if rep.AfterTo.After(time.Now()) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the after window ends in the future (%s): it holds only the records logged so far",
			rep.AfterTo.Format(time.RFC3339)))
	}
	for key, s := range sums {
		if key[0] == "isp" {
			rep.Rows = append(rep.Rows, Row{Kind: "isp", Name: key[1], Before: s.before, After: s.after})
		}
	}
	slices.SortFunc(rep.Rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(b.Before.Attempts+b.After.Attempts, a.Before.Attempts+a.After.Attempts), strings.Compare(a.Name, b.Name))
	})
	for _, t := range focus {
		r := Row{Kind: t.Kind, Name: t.Name, Focus: true}
		for _, v := range t.Values {
			// As the records' values were made: safe first (a long one
			// keeps its start and a hash of the whole), then lower case.
			if s := sums[[2]string{t.Kind, strings.ToLower(agent.SafeTag(v))}]; s != nil {
				r.Before, r.After = r.Before.Add(s.before), r.After.Add(s.after)
			}
		}
		rep.Rows = append(rep.Rows, r)
	}
	for i := range rep.Rows {
		rep.Rows[i].Verdict = Compare(rep.Rows[i].Before, rep.Rows[i].After, opts)
		// The effect was expected where the change applies: on the focus
		// when it names one, else anywhere.
		if len(focus) > 0 && !rep.Rows[i].Focus {
			rep.Rows[i].Flag = ""
		}
		if rep.Rows[i].Flag != "" {
			rep.Explanation = Explanation
		}
	}
	if err != nil {
		return rep, err // says its file: "backfill: open …"
	}
	return rep, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
