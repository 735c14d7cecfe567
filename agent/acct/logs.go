package acct

import (
	"context"
	"log/slog"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/ratelog"
)

// limitedLog writes a repeating message at most once per period, with how
// many it held back since the last line (suppressed_since_last), so that a
// file full of garbage or a checkpoint that cannot be written does not flood
// the log. The counting is a ratelog.Episode that is never ended; this only
// adds the logger, the level and the clock. Messages sharing one limitedLog
// share its budget. It is safe for concurrent use: batch Done callbacks log
// through it too.
type limitedLog struct {
	ep     ratelog.Episode
	logger *slog.Logger
	level  slog.Level
	now    func() time.Time
}

func newLimitedLog(logger *slog.Logger, level slog.Level, every time.Duration, now func() time.Time) *limitedLog {
	return &limitedLog{ep: ratelog.Episode{Every: every}, logger: logger, level: level, now: now}
}

func (l *limitedLog) log(msg string, args ...any) {
	due, _, held, _ := l.ep.Hit(l.now())
	if !due {
		return
	}
	if held > 0 {
		args = append(args, "suppressed_since_last", held)
	}
	l.logger.Log(context.Background(), l.level, msg, args...)
}
