package influx

import (
	"log/slog"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Intervals between repeated log lines about the same condition.
const (
	failingRepeat  = 5 * time.Minute
	rejectedRepeat = time.Minute
)

// health logs the sink's state changes — failing, failing differently,
// recovered — through an agent.FailureLog, which repeats a continuing failure
// at most once per failingRepeat, so a dead server costs a few lines an hour,
// not one per retry. Rejections are logged at most once per rejectedRepeat,
// with the number of points rejected since the last line.
type health struct {
	fails *agent.FailureLog
	log   *slog.Logger
	now   func() time.Time

	mu            sync.Mutex
	lastRejectLog time.Time
	unlogged      int // points rejected since the last rejection log line
}

func newHealth(log *slog.Logger, now func() time.Time) *health {
	return &health{fails: agent.NewFailureLog(log, "influx write", failingRepeat, now), log: log, now: now}
}

func (h *health) failed(se *agent.SinkError) { h.fails.Failed(se) }

func (h *health) succeeded() { h.fails.Succeeded() }

func (h *health) rejected(points int, se *agent.SinkError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unlogged += points
	now := h.now()
	if !h.lastRejectLog.IsZero() && now.Sub(h.lastRejectLog) < rejectedRepeat {
		return
	}
	h.log.Warn("influx rejected points for good", "points", h.unlogged, "err", se.Err.Error())
	h.lastRejectLog, h.unlogged = now, 0
}
