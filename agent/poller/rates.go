package poller

import (
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// minRateInterval is the shortest gap between two polls over which a rate is
// derived. PowerMTA's counters and clock have a resolution of one second, so a
// shorter gap (two rounds started back to back) gives noise, not a rate.
const minRateInterval = time.Second

// counters are the cumulative totals of one /status reply.
type counters struct {
	startup                      string
	outRcp, outMsg, inRcp, inMsg flexInt
	bounce, fbl                  flexInt
	outKB, inKB                  flexFloat
}

// rateState remembers the last successful /status reply, so that the next
// one can be turned into per-second rates.
type rateState struct {
	prev counters
	at   time.Time
	have bool
}

// observe records cur, taken at t, and returns the rates since the previous
// observation. It returns no rate on the first observation, when the clock
// did not move forward enough, and after a restart or counter reset: then
// restart names the reason and cur becomes the new baseline.
func (r *rateState) observe(cur counters, t time.Time) (rates []agent.Field, restart string) {
	prev, prevAt, had := r.prev, r.at, r.have
	r.prev, r.at, r.have = cur, t, true
	if !had {
		return nil, ""
	}
	if prev.startup != "" && cur.startup != "" && prev.startup != cur.startup {
		return nil, "startupTime changed from " + prev.startup + " to " + cur.startup
	}
	for _, c := range []struct {
		name     string
		old, new flexInt
	}{
		{"out.rcp", prev.outRcp, cur.outRcp}, {"out.msg", prev.outMsg, cur.outMsg},
		{"in.rcp", prev.inRcp, cur.inRcp}, {"in.msg", prev.inMsg, cur.inMsg},
		{"bounceProcessed", prev.bounce, cur.bounce}, {"feedbackLoopProcessed", prev.fbl, cur.fbl},
	} {
		if c.old.ok && c.new.ok && c.new.v < c.old.v {
			return nil, "total " + c.name + " went down (restart or reset counters)"
		}
	}
	for _, c := range []struct {
		name     string
		old, new flexFloat
	}{{"out.kb", prev.outKB, cur.outKB}, {"in.kb", prev.inKB, cur.inKB}} {
		if c.old.ok && c.new.ok && c.new.v < c.old.v {
			return nil, "total " + c.name + " went down (restart or reset counters)"
		}
	}
	dt := t.Sub(prevAt)
	if dt < minRateInterval {
		return nil, ""
	}
	secs := dt.Seconds()
	perSecInt := func(name string, old, new flexInt) {
		if old.ok && new.ok {
			rates = append(rates, agent.Field{Key: name, Value: float64(new.v-old.v) / secs})
		}
	}
	perSecInt("out_rcp_per_sec", prev.outRcp, cur.outRcp)
	perSecInt("in_rcp_per_sec", prev.inRcp, cur.inRcp)
	if prev.outKB.ok && cur.outKB.ok {
		rates = append(rates, agent.Field{Key: "out_kb_per_sec", Value: (cur.outKB.v - prev.outKB.v) / secs})
	}
	perSecInt("in_msg_per_sec", prev.inMsg, cur.inMsg)
	return rates, ""
}
