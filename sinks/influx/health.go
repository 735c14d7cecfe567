package influx

import (
	"log/slog"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/ratelog"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Intervals between repeated log lines about the same condition.
const (
	failingRepeat  = 5 * time.Minute
	rejectedRepeat = time.Minute
)

// health logs the sink's state changes — failing, failing differently,
// recovered — through an ratelog.FailureLog, which repeats a continuing failure
// at most once per failingRepeat, so a dead server costs a few lines an hour,
// not one per retry. Refusals for good are logged at most once per
// rejectedRepeat, with the number of refused writes since the last line: the
// delivery loop writes a refused batch again in halves to find the bad
// points, so one bad point causes a burst of refusals, and the number of
// points finally dead-lettered is the loop's to count.
type health struct {
	fails *ratelog.FailureLog
	log   *slog.Logger
	now   func() time.Time

	mu            sync.Mutex
	lastRejectLog time.Time
	unlogged      int // refusals since the last rejection log line
}

func newHealth(log *slog.Logger, now func() time.Time) *health {
	return &health{fails: ratelog.NewFailureLog(log, "influx write", failingRepeat, now), log: log, now: now}
}

func (h *health) failed(se *agent.SinkError) { h.fails.Failed(se) }

func (h *health) succeeded() { h.fails.Succeeded() }

// rejected records a write refused for good: by the server, or by the sink
// for a point line protocol cannot carry.
func (h *health) rejected(se *agent.SinkError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unlogged++
	now := h.now()
	if !h.lastRejectLog.IsZero() && now.Sub(h.lastRejectLog) < rejectedRepeat {
		return
	}
	h.log.Warn("influx rejected points for good", "refusals", h.unlogged, "err", se.Err.Error())
	h.lastRejectLog, h.unlogged = now, 0
}
