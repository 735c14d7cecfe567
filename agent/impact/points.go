package impact

import (
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Measurement is the name of the points a report becomes.
const Measurement = "pmta_impact"

// The values of the verdict field.
const (
	CodeTooFew   int64 = -1
	CodeNoChange int64 = 0
	CodeBetter   int64 = 1
	CodeWorse    int64 = 2
)

// Code is the verdict field's value of an outcome.
func Code(o Outcome) int64 {
	switch o {
	case Better:
		return CodeBetter
	case Worse:
		return CodeWorse
	case NoChange:
		return CodeNoChange
	}
	return CodeTooFew
}

// Points returns r as pmta_impact points, one per row: tags server, kind,
// name and touched ("yes" for a row of what the change named, the focus;
// "no" for the other ISPs), fields before_attempts, after_attempts,
// before_deferral_pct, after_deferral_pct, before_bounce_pct,
// after_bounce_pct, deferral_z, bounce_z, verdict (Code), effect_absent
// (1 when the row carries the EffectAbsent flag) and window_s; all at
// r.At, the change's time as Analyze took it (to the whole second).
//
// Everything in a point comes from the report, so a later run over the
// same change (the window filled, a rerun) writes the same series at the
// same time and overwrites the earlier values. A focus row that names an
// ISP row's series (a <domain $macro> whose domains are unknown is the
// isp of that name) replaces that row, touched; a focus named twice is
// one point. Tag values go through agent.SafeTag.
func Points(r Report, server string) []agent.Point {
	windowS := int64(r.AfterTo.Sub(r.At) / time.Second)
	out := make([]agent.Point, 0, len(r.Rows))
	seen := make(map[[2]string]int, len(r.Rows)) // (kind, name) → index in out
	for _, row := range r.Rows {
		key := [2]string{row.Kind, row.Name}
		p := point(row, server, windowS, r.At)
		if i, dup := seen[key]; dup {
			if row.Focus {
				out[i] = p // the change's own row wins over the ISP row
			}
			continue
		}
		seen[key] = len(out)
		out = append(out, p)
	}
	return out
}

func point(row Row, server string, windowS int64, at time.Time) agent.Point {
	touched := "no"
	if row.Focus {
		touched = "yes"
	}
	var absent int64
	if row.Flag != "" {
		absent = 1
	}
	tags := []agent.Tag{
		{Key: "server", Value: agent.SafeTag(server)},
		{Key: "kind", Value: agent.SafeTag(row.Kind)},
		{Key: "name", Value: agent.SafeTag(row.Name)},
		{Key: "touched", Value: touched},
	}
	fields := []agent.Field{
		{Key: "before_attempts", Value: row.Before.Attempts},
		{Key: "after_attempts", Value: row.After.Attempts},
		{Key: "before_deferral_pct", Value: row.Deferrals.BeforePct},
		{Key: "after_deferral_pct", Value: row.Deferrals.AfterPct},
		{Key: "before_bounce_pct", Value: row.Bounces.BeforePct},
		{Key: "after_bounce_pct", Value: row.Bounces.AfterPct},
		{Key: "deferral_z", Value: row.Deferrals.Z},
		{Key: "bounce_z", Value: row.Bounces.Z},
		{Key: "verdict", Value: Code(row.Outcome)},
		{Key: "effect_absent", Value: absent},
		{Key: "window_s", Value: windowS},
	}
	return agent.NewPoint(Measurement, tags, fields, at)
}
