package otlp

import (
	"log/slog"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/ratelog"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Intervals between repeated log lines about the same condition.
const (
	failingRepeat = 5 * time.Minute
	noticeRepeat  = time.Minute
)

// health logs the sink's state changes — failing, failing differently,
// recovered — through an ratelog.FailureLog, which repeats a continuing failure
// at most once per failingRepeat, so a dead collector costs a few lines an
// hour, not one per retry. Other notices (rejections, skipped replays,
// state-file trouble) are logged at most once per noticeRepeat each.
type health struct {
	fails *ratelog.FailureLog
	log   *slog.Logger
	now   func() time.Time

	mu         sync.Mutex
	lastNotice map[string]time.Time
}

func newHealth(log *slog.Logger, now func() time.Time) *health {
	return &health{
		fails:      ratelog.NewFailureLog(log, "otlp export", failingRepeat, now),
		log:        log,
		now:        now,
		lastNotice: make(map[string]time.Time),
	}
}

func (h *health) failed(se *agent.SinkError, endpoint string) {
	h.fails.Failed(se, "endpoint", endpoint)
}

func (h *health) succeeded() { h.fails.Succeeded() }

// notice logs msg at warning level unless the same msg was logged within
// noticeRepeat.
func (h *health) notice(msg string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if last, ok := h.lastNotice[msg]; ok && now.Sub(last) < noticeRepeat {
		return
	}
	h.lastNotice[msg] = now
	h.log.Warn(msg, args...)
}
