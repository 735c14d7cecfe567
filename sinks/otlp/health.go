package otlp

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// minSecret is the shortest header value (or credential within one) that is
// scrubbed from text: a shorter one would garble every message while
// protecting nothing.
const minSecret = 4

// secrets are the header values, which must never appear in an error or a
// log line: a server may echo a header in its answer.
type secrets []string

func newSecrets(headers map[string]string) secrets {
	var s secrets
	for _, v := range headers {
		if len(v) >= minSecret {
			s = append(s, v)
		}
		// "Bearer <token>", "Basic <credentials>": the credential alone
		// may be echoed too.
		if _, cred, ok := strings.Cut(v, " "); ok && len(strings.TrimSpace(cred)) >= minSecret {
			s = append(s, strings.TrimSpace(cred))
		}
	}
	return s
}

func (s secrets) scrub(text string) string {
	for _, v := range s {
		text = strings.ReplaceAll(text, v, "[redacted]")
	}
	return text
}

func (s secrets) contained(text string) bool {
	for _, v := range s {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// redact returns the error with any secret removed from its text. Only an
// error that holds a secret loses its chain (to a plain error with the
// scrubbed text); others pass unchanged.
func (s secrets) redact(se *agent.SinkError) *agent.SinkError {
	if se == nil || !s.contained(se.Err.Error()) {
		return se
	}
	return &agent.SinkError{Kind: se.Kind, RetryAfter: se.RetryAfter, Err: errors.New(s.scrub(se.Err.Error()))}
}

// Intervals between repeated log lines about the same condition.
const (
	failingRepeat = 5 * time.Minute
	noticeRepeat  = time.Minute
)

// health logs the sink's state changes — failing, failing differently,
// recovered — and repeats a continuing failure at most once per
// failingRepeat, so a dead collector costs a few lines an hour, not one per
// retry. Other notices (rejections, skipped replays, state-file trouble) are
// logged at most once per noticeRepeat each.
type health struct {
	log *slog.Logger
	now func() time.Time

	mu          sync.Mutex
	failing     bool
	kind        agent.ErrorKind
	failures    int
	lastFailLog time.Time
	lastNotice  map[string]time.Time
}

func newHealth(log *slog.Logger, now func() time.Time) *health {
	return &health{log: log, now: now, lastNotice: make(map[string]time.Time)}
}

func (h *health) failed(se *agent.SinkError, endpoint string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	now := h.now()
	switch {
	case !h.failing || h.kind != se.Kind:
		h.log.Warn("otlp export failing", "endpoint", endpoint, "kind", se.Kind.String(),
			"retry_after", se.RetryAfter, "err", se.Err.Error())
	case now.Sub(h.lastFailLog) >= failingRepeat:
		h.log.Warn("otlp export still failing", "endpoint", endpoint, "kind", se.Kind.String(),
			"failures", h.failures, "err", se.Err.Error())
	default:
		return
	}
	h.failing, h.kind, h.lastFailLog = true, se.Kind, now
}

func (h *health) succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		h.log.Info("otlp export recovered", "failures", h.failures)
	}
	h.failing, h.failures = false, 0
}

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
