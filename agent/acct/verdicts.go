package acct

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
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
	concerns := concerning(c)
	return c.Verdict == concerns || c.From == concerns
}

// concerning is the verdict a change's row is logged for: ip_specific for
// an IP, pool_wide for a pool.
func concerning(c *verdict.Change) verdict.Verdict {
	if c.SourceIP != "" {
		return verdict.IPSpecific
	}
	return verdict.PoolWide
}

// logVerdicts says what changed, one line per thing to look at (the
// changes appendVerdicts kept: see logged), and how many changes more than
// it keeps there were.
func (t *Tailer) logVerdicts(changes []verdict.Change, over int) {
	if over > 0 {
		t.log.Warn("more verdict changes than the log takes at once; the points hold them all", "not_logged", over)
	}
	for i := range changes {
		c := &changes[i]
		ip, concerns := c.SourceIP != "", concerning(c)
		// The window's end: a catch-up after a stop judges times past,
		// which the line must not pass off as now.
		attrs := []any{"isp", c.ISP, "pool", c.Pool, "window_end", c.At}
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

// verdictsFile holds the verdict window from a stop to the next start.
const verdictsFile = "verdicts.json"

// saveVerdicts writes the verdict window at a stop, marked with how far
// the intervals are closed, so that the next start carries on with it
// instead of 15 minutes of verdicts over a filling window — and of alerts
// resolving and firing again at every restart.
func (t *Tailer) saveVerdicts() {
	w := t.agg.verdicts
	if w == nil || !t.agg.closedSet {
		return
	}
	b, err := w.MarshalState(t.agg.closedUpTo)
	if err == nil {
		err = statefile.WriteAtomic(filepath.Join(t.cfg.StateDir, verdictsFile), b, 0o600)
		if _, dirOnly := errors.AsType[*statefile.DirSyncError](err); dirOnly {
			err = nil
		}
	}
	if err != nil {
		t.log.Warn("verdict window not saved: the next start fills it again", "err", err)
	}
}

// restoreVerdicts takes the window saveVerdicts left, when it saw every
// interval the checkpoint closed: a cut replayed after a crash is then
// left out of it (verdict.Window.Observe), and a window older than the
// checkpoint (the last stop was a crash) is dropped. The file is removed
// either way.
func (t *Tailer) restoreVerdicts() {
	path := filepath.Join(t.cfg.StateDir, verdictsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	defer os.Remove(path)
	if err != nil {
		t.log.Warn("verdict window not restored", "err", err)
		return
	}
	w := t.agg.verdicts
	upTo, err := w.RestoreState(b)
	switch {
	case err != nil:
		t.log.Info("verdict window not restored: it fills again", "reason", err)
	case !t.agg.closedSet || upTo < t.agg.closedUpTo:
		w.Reset()
		t.log.Info("verdict window not restored: older than the checkpoint (the agent stopped without saving it); it fills again")
	default:
		t.log.Debug("verdict window restored", "up_to", upTo)
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
