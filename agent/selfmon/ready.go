package selfmon

import (
	"fmt"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Readiness returns what makes the agent unready, or nothing. It reads the
// components' Stats, so every rule is visible in the metrics as well, and
// the problems a component names itself (a directory the accounting tailer
// cannot read), which its stats count.
func Readiness(now time.Time, cfg Config, reporters []agent.StatsReporter) []string {
	var problems []string
	for _, r := range reporters {
		c := r.Component()
		if pr, ok := r.(interface{ Problems() []string }); ok {
			problems = append(problems, pr.Problems()...)
		}
		f := fieldMap(r.Stats())
		switch {
		case c == "api" && cfg.APIStale > 0:
			last := f["last_success_unix"]
			switch {
			case last == 0:
				problems = append(problems, "api: no successful poll yet")
			case now.Sub(time.Unix(int64(last), 0)) > cfg.APIStale:
				problems = append(problems, fmt.Sprintf("api: last successful poll %s ago (limit %s)",
					now.Sub(time.Unix(int64(last), 0)).Round(time.Second), cfg.APIStale))
			}
		case c == "acct" && cfg.MaxTailLag > 0:
			// The age of the newest record read is a lag only while there is
			// something unread: an idle PowerMTA writes nothing and is fine.
			if lag := time.Duration(f["tail_lag_s"] * float64(time.Second)); lag > cfg.MaxTailLag && f["tail_lag_bytes"] > 0 {
				problems = append(problems, fmt.Sprintf("acct: tail lag %s (limit %s)", lag.Round(time.Second), cfg.MaxTailLag))
			}
		case strings.HasPrefix(c, "sink_") && cfg.MaxSinkFailure > 0:
			if since := f["failing_since_unix"]; since > 0 {
				if d := now.Sub(time.Unix(int64(since), 0)); d > cfg.MaxSinkFailure {
					problems = append(problems, fmt.Sprintf("%s: failing for %s (limit %s)", c, d.Round(time.Second), cfg.MaxSinkFailure))
				}
			}
		}
	}
	return problems
}

func fieldMap(fields []agent.Field) map[string]float64 {
	m := make(map[string]float64, len(fields))
	for _, f := range fields {
		if v, ok := agent.FieldNumber(f.Value); ok {
			m[f.Key] = v
		}
	}
	return m
}
