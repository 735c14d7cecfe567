package otlp

import (
	"log/slog"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/ratelog"
)

// noticeEvery is the least time between two log lines about the same kind
// of notice.
const noticeEvery = time.Minute

// notices logs what only the sink sees, each kind of notice through its
// own ratelog.Episode: the collector took an export but rejected some of
// its data points, or accepted it with a warning, or answered 2xx with an
// answer that could not be read; cumulative mode skipped replayed
// intervals; the cumulative state could not be saved. None of them fails a
// write, and none ends, so each is logged at most once per noticeEvery,
// with the number of occurrences held back since the last line. Failed and
// refused writes are not notices: the delivery loop logs those.
type notices struct {
	log *slog.Logger

	rejected ratelog.Episode
	warned   ratelog.Episode
	unread   ratelog.Episode
	replays  ratelog.Episode
	unsaved  ratelog.Episode
}

func newNotices(log *slog.Logger) *notices {
	n := &notices{log: log}
	for _, e := range []*ratelog.Episode{&n.rejected, &n.warned, &n.unread, &n.replays, &n.unsaved} {
		e.Every = noticeEvery
	}
	return n
}

// warn logs msg with args at warning level when e is due at now, adding
// how many occurrences went without a line before it.
func (n *notices) warn(e *ratelog.Episode, now time.Time, msg string, args ...any) {
	due, _, held, _ := e.Hit(now)
	if !due {
		return
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	n.log.Warn(msg, args...)
}
