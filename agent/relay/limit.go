package relay

import (
	"sync"
	"time"
)

// limiter is a token bucket per caller: burst requests at once, then one
// per every interval.
type limiter struct {
	mu      sync.Mutex
	every   time.Duration
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	left float64
	at   time.Time
}

func newLimiter(perMinute, burst int) *limiter {
	return &limiter{every: time.Minute / time.Duration(max(perMinute, 1)), burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// allow takes one request of name at now, or says how long until one is
// allowed.
func (l *limiter) allow(name string, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[name]
	if b == nil {
		b = &bucket{left: l.burst, at: now}
		l.buckets[name] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.left = min(l.burst, b.left+float64(d)/float64(l.every))
		b.at = now
	}
	if b.left >= 1 {
		b.left--
		return true, 0
	}
	return false, time.Duration((1 - b.left) * float64(l.every))
}
