package transport

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads the value of a Retry-After header in either form,
// delay-seconds or an HTTP date (RFC 9110, section 10.2.3; all three date
// formats http.ParseTime knows). It returns 0 when the value is empty,
// unreadable, not positive or a date not after now, and at most limit: a
// sink passes the longest wait it takes from a server, since waiting longer
// is taken for the server's mistake while the queue fills and sheds data.
func ParseRetryAfter(value string, now time.Time, limit time.Duration) time.Duration {
	v := strings.TrimSpace(value)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Compare before multiplying so a huge value cannot overflow.
		if secs >= int64(limit/time.Second) {
			return limit
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), limit)
	}
	return 0
}
