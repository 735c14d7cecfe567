package acct

import (
	"math"

	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// VerdictWindow returns the window the tailer judges its closed intervals
// in (nil with acct.verdict off), for the tailer that replaces it at a
// reload: see Config.VerdictWindow. Call it only once the tailer has
// stopped.
func (t *Tailer) VerdictWindow() *verdict.Window { return t.agg.verdicts }

// logged says whether the log writes a change: an IP turning IP-specific
// (or back), a pool turning pool-wide (or back). The IPs of a pool-wide
// pool and a pool with an IP-specific IP are in the points, not in the
// log: their lines would repeat the one that says it.
func logged(c *verdict.Change) bool {
	concerns := verdict.PoolWide
	if c.SourceIP != "" {
		concerns = verdict.IPSpecific
	}
	return c.Verdict == concerns || c.From == concerns
}

// logVerdicts says what changed, one line per thing to look at (see
// logged), and how many changes more than it keeps there were.
func (t *Tailer) logVerdicts(changes []verdict.Change, over int) {
	if over > 0 {
		t.log.Warn("more verdict changes than the log takes at once; the points hold them all", "not_logged", over)
	}
	for i := range changes {
		c := &changes[i]
		if !logged(c) {
			continue
		}
		ip := c.SourceIP != ""
		concerns := verdict.PoolWide
		if ip {
			concerns = verdict.IPSpecific
		}
		attrs := []any{"isp", c.ISP, "pool", c.Pool}
		if ip {
			attrs = append(attrs, "source_ip", c.SourceIP)
		}
		attrs = append(attrs, "deferral_pct", round2(c.DeferralPct), "attempts", c.Attempts)
		if c.HasMedian {
			attrs = append(attrs, "pool_median_pct", round2(c.PoolMedianPct))
		}
		if !ip {
			attrs = append(attrs, "ips_above", c.IPsAbove, "ips", c.IPs)
		}
		switch {
		case c.Verdict == concerns && ip:
			t.log.Warn("verdict ip_specific: one IP defers well above its pool; "+c.Verdict.Advice(), attrs...)
		case c.Verdict == concerns:
			t.log.Warn("verdict pool_wide: "+c.Verdict.Advice(), attrs...)
		default:
			t.log.Info("verdict "+c.From.String()+" over", append(attrs, "now", c.Verdict.String())...)
		}
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
