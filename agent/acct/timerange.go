package acct

import "time"

// Plausible accounting times: PowerMTA did not exist before 1990, and what a
// clock says beyond 2200 is a broken clock. Both are far inside what a
// nanosecond timestamp holds (1678–2262), so no time can wrap.
const (
	minPlausible = 631152000  // 1990-01-01T00:00:00Z
	maxPlausible = 7258118400 // 2200-01-01T00:00:00Z
)

// rangeReason says why a record's timeLogged is refused.
type rangeReason uint8

const (
	inRange rangeReason = iota
	// tooNew: later than the clock by more than the allowed skew.
	tooNew
	// tooOld: older than the horizon (while tailing).
	tooOld
	// implausible: before 1990 or after 2200.
	implausible
	numRangeReasons
)

func (r rangeReason) String() string {
	switch r {
	case tooNew:
		return "future"
	case tooOld:
		return "old"
	case implausible:
		return "invalid"
	}
	return "in range"
}

// timeRange decides which timeLogged values the aggregator takes. A record
// outside it is counted per reason and never aggregated, so that a wrong
// clock or a restored file can neither open intervals in the future — which
// would close the present early and make every later record late — nor
// stall current data behind decades of empty windows.
type timeRange struct {
	now    func() time.Time
	skew   int64 // seconds a record may be ahead of the clock
	maxAge int64 // seconds a record may be behind the clock; 0: any age
}

// nowUnix is the clock in seconds; consume reads it once per buffer.
func (r *timeRange) nowUnix() int64 {
	if r.now == nil {
		return time.Now().Unix()
	}
	return r.now().Unix()
}

func (r *timeRange) check(ts, now int64) rangeReason {
	switch {
	case ts < minPlausible || ts >= maxPlausible:
		return implausible
	case ts > now+r.skew:
		return tooNew
	case r.maxAge > 0 && ts < now-r.maxAge:
		return tooOld
	}
	return inRange
}
