// Package ratelog decides when a repeating condition deserves a log line, so
// that a dead server, a file full of garbage or a flood of refused points
// costs a few lines an hour rather than one per occurrence. Every
// rate-limited log of the agent goes through an Episode (FailureLog is one
// for writes to a remote); the callers keep their own messages.
package ratelog

import (
	"sync"
	"time"
)

// Episode follows a condition that starts, lasts and ends: a sink failing,
// an endpoint down, malformed lines in a file. A line is due when it starts,
// then at most once per Every while it lasts; End closes it, and the next
// occurrence starts a new one. A condition that never ends (malformed lines,
// refused points) is just logged at most once per Every. The zero Episode
// with Every set is ready; it is safe for concurrent use.
type Episode struct {
	Every time.Duration

	mu     sync.Mutex
	active bool
	since  time.Time // when the episode started
	last   time.Time // the last line
	held   int64     // occurrences since the last line
}

// Hit records one occurrence at now. It reports whether a line is due,
// whether this occurrence starts the episode, how many occurrences went
// without a line since the last one, and since when the condition lasts.
func (e *Episode) Hit(now time.Time) (due, first bool, held int64, since time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.active {
		e.active, e.since, e.last, e.held = true, now, now, 0
		return true, true, 0, now
	}
	if now.Sub(e.last) < e.Every {
		e.held++
		return false, false, e.held, e.since
	}
	held = e.held
	e.last, e.held = now, 0
	return true, false, held, e.since
}

// End closes the episode at now. It reports whether one was under way and
// how long it lasted.
func (e *Episode) End(now time.Time) (ended bool, lasted time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.active {
		return false, 0
	}
	e.active = false
	return true, now.Sub(e.since)
}

// Active reports whether an episode is under way.
func (e *Episode) Active() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active
}
