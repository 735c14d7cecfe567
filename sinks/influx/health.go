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
// recovered — and repeats a continuing failure or rejections at most once per
// interval, so a dead server costs a few lines an hour, not one per retry.
type health struct {
	log *slog.Logger
	now func() time.Time

	mu            sync.Mutex
	failing       bool
	kind          agent.ErrorKind
	failures      int // since the last success
	lastFailLog   time.Time
	lastRejectLog time.Time
	unlogged      int // points rejected since the last rejection log line
}

func newHealth(log *slog.Logger, now func() time.Time) *health {
	return &health{log: log, now: now}
}

func (h *health) failed(se *agent.SinkError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	now := h.now()
	switch {
	case !h.failing || h.kind != se.Kind:
		h.log.Warn("influx write failing", "kind", se.Kind.String(), "retry_after", se.RetryAfter, "err", se.Err.Error())
	case now.Sub(h.lastFailLog) >= failingRepeat:
		h.log.Warn("influx write still failing", "kind", se.Kind.String(), "failures", h.failures, "err", se.Err.Error())
	default:
		return
	}
	h.failing, h.kind, h.lastFailLog = true, se.Kind, now
}

func (h *health) succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		h.log.Info("influx write recovered", "failures", h.failures)
	}
	h.failing, h.failures = false, 0
}

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
