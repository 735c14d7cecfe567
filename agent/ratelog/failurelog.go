package ratelog

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// FailureLog logs the state changes of writes to a remote (failing, failing
// differently, recovered) and repeats a continuing failure at most once per
// reminder period, so that a dead server costs a few lines an hour, not one
// per retry. Its messages are "<what> failing", "<what> still failing" and
// "<what> recovered". It is safe for concurrent use.
type FailureLog struct {
	log    *slog.Logger
	what   string
	repeat time.Duration
	now    func() time.Time

	mu       sync.Mutex
	failing  bool
	kind     agent.ErrorKind
	failures int // since the last success
	lastLog  time.Time
}

// NewFailureLog returns a FailureLog that writes to log, names the operation
// what ("influx write") in its messages, reminds of a continuing failure
// every repeat, and reads the time from now (time.Now outside tests).
func NewFailureLog(log *slog.Logger, what string, repeat time.Duration, now func() time.Time) *FailureLog {
	return &FailureLog{log: log, what: what, repeat: repeat, now: now}
}

// Failed records a failed write. It logs a warning when writes start failing
// or fail with another kind of error than before, and a reminder with the
// number of failures when repeat has passed since the last line; otherwise
// nothing. attrs (slog key/value pairs, such as the endpoint) lead the line's
// attributes.
func (l *FailureLog) Failed(se *agent.SinkError, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	now := l.now()
	args := slices.Clip(attrs) // appending must not write into the caller's array
	switch {
	case !l.failing || l.kind != se.Kind:
		l.log.Warn(l.what+" failing", append(args,
			"kind", se.Kind.String(), "retry_after", se.RetryAfter, "err", se.Err.Error())...)
	case now.Sub(l.lastLog) >= l.repeat:
		l.log.Warn(l.what+" still failing", append(args,
			"kind", se.Kind.String(), "failures", l.failures, "err", se.Err.Error())...)
	default:
		return
	}
	l.failing, l.kind, l.lastLog = true, se.Kind, now
}

// Succeeded records a write the remote took. After failures it logs the
// recovery with their number.
func (l *FailureLog) Succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing {
		l.log.Info(l.what+" recovered", "failures", l.failures)
	}
	l.failing, l.failures = false, 0
}
