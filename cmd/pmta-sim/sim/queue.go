package sim

import (
	"math"
)

// episode is the length of a natural backoff episode: every episode each
// queue is, by a hash of (seed, queue, episode), either in backoff or not.
// Manual mode changes (set queue --mode, schedule) also last one episode.
const episode = 1200

// retryStep is the interval at which a queue in backoff or paused is retried.
const retryStep = 600

// maxBacklog caps the recipients a paused queue can pile up.
const maxBacklog = 1_000_000

// queue is one domain/vmta pair and its runtime state.
type queue struct {
	name       string
	di, vi     int
	share      float64 // share of delivery attempts with nothing paused
	sizeTenths int64   // mean kilobytes per queued recipient, in tenths
	maxConn    int64
	period     float64 // seconds of the queue's slow swell
	phase      float64
	backoffP   float64 // chance that a given episode is a backoff episode

	// State changed by commands.
	paused    bool
	pausedAt  int64
	pauseBase float64 // backlog still draining when the pause began
	resumedAt int64
	drainFrom float64 // backlog at resume, drained linearly afterwards
	override  string  // "normal" or "backoff" set by a command
	overAt    int64
	overUntil int64
	boost     int64 // recipients added by SetQueueBoost

	// Counters folded out of finished segments and written by accounting.
	delivered, deferred, bounced int64
}

func newQueue(seed uint64, qi int, d *domain, di int, v *vmta, vi int, share float64) queue {
	h := hash3(seed, 0x9e7e, uint64(qi))
	size := 470 + int64(h%40)
	if v.pool == poolTransactional {
		size = 80 + int64(h%30)
	}
	return queue{
		name:       d.name + "/" + v.name,
		di:         di,
		vi:         vi,
		share:      share,
		sizeTenths: size,
		maxConn:    poolDefs[v.pool].conn,
		period:     1800 + 5400*unit(mix(h)),
		phase:      2 * math.Pi * unit(mix(h+1)),
		backoffP:   classBackoff(d.class),
	}
}

// classBackoff is the base chance of a backoff episode per domain class.
func classBackoff(class int) float64 {
	switch class {
	case classGmail, classEU:
		return 0.05
	case classYahoo:
		return 0.2
	case classAOL:
		return 0.3
	case classMicrosoft:
		return 0.08
	case classApple:
		return 0.04
	case classSlow:
		return 1
	case classMailFull:
		return 0.15
	}
	return 0.03
}

// backlog is how many recipients a pause has piled up in q at time t.
func (q *queue) backlog(t int64, inRate float64) float64 {
	var b float64
	switch {
	case q.paused:
		b = q.pauseBase + inRate*float64(t-q.pausedAt)
	case q.resumedAt > 0:
		b = q.drainFrom - 3*inRate*float64(t-q.resumedAt)
	}
	return math.Max(0, math.Min(b, maxBacklog))
}

// queueState is a queue as seen at one second.
type queueState struct {
	rcp, kb, conn int64 // kb in tenths
	backoff       bool
	retry         int64 // unix seconds, 0 when none
	events        []eventAt
}

type eventAt struct {
	t    int64
	kind int
}

// Event kinds; texts.go turns them into PowerMTA's wording.
const (
	evDeferral    = iota // the ISP's 4xx reply ("Error: ... while connected ...")
	evConnLimit          // connect rate limit reached
	evMsgLimit           // message rate limit reached
	evUnreachable        // ETIMEDOUT connecting ...
)

// stateAt computes queue qi at second t from the seed, the current segment
// and the command state; it changes nothing.
func (s *Sim) stateAt(qi int, t int64) queueState {
	q := &s.queues[qi]
	var st queueState

	bucket := t / episode
	start := bucket * episode
	st.backoff = unit(hash3(s.seed^0xb0ff, uint64(qi), uint64(bucket))) < s.seg.backoffP[qi]
	if q.override != "" && t < q.overUntil {
		st.backoff = q.override == "backoff"
		start = q.overAt
	}

	base := s.targetTotal * s.seg.rcpShare[qi]
	wave := 1 + 0.25*math.Sin(2*math.Pi*float64(t)/q.period+q.phase)
	noise := 0.9 + 0.2*unit(hash3(s.seed^0x7c9, uint64(qi), uint64(t/30)))
	v := base * wave * noise
	if st.backoff {
		v *= 2.5
	}
	st.rcp = int64(v+0.5) + int64(q.backlog(t, s.effRate*q.share)) + q.boost
	st.kb = st.rcp * q.sizeTenths

	hc := hash3(s.seed^0xc0, uint64(qi), uint64(t/10))
	switch {
	case q.paused || st.rcp == 0:
	case st.backoff:
		st.conn = int64(hc & 1)
	default:
		st.conn = min(q.maxConn, 1+st.rcp/250)
		if st.conn > 1 {
			st.conn -= int64(hc % 2)
		}
	}

	class := s.domains[q.di].class
	he := hash3(s.seed^0xe7, uint64(qi), uint64(start))
	switch {
	case st.backoff:
		kind := evDeferral
		if class == classSlow {
			kind = evUnreachable
		} else if he%4 == 0 {
			kind = evConnLimit
		}
		n := 1 + int(he%3)
		step := 90 + int64(mix(he)%240)
		for k := n - 1; k >= 0; k-- { // newest first, as the monitor lists them
			if at := start + int64(k)*step; at <= t {
				st.events = append(st.events, eventAt{at, kind})
			}
		}
		st.retry = start + retryStep*((t-start)/retryStep+1)
	case class == classGmail || class == classYahoo || class == classAOL || class == classMicrosoft:
		// Busy queues hit their own rate limits now and then.
		if unit(mix(he)) < 0.25 {
			at := start + int64(he%episode)
			if at <= t {
				kind := evConnLimit
				if he&1 == 1 {
					kind = evMsgLimit
				}
				st.events = append(st.events, eventAt{at, kind})
			}
		}
	}
	if q.paused {
		st.retry = q.pausedAt + retryStep*((t-q.pausedAt)/retryStep+1)
	}
	return st
}

// pause and resume change a queue's pause state at second t.
func (s *Sim) pause(qi int, t int64) {
	q := &s.queues[qi]
	if q.paused {
		return
	}
	q.pauseBase = q.backlog(t, s.effRate*q.share)
	q.paused, q.pausedAt = true, t
}

func (s *Sim) resume(qi int, t int64) {
	q := &s.queues[qi]
	if !q.paused {
		return
	}
	q.drainFrom = q.backlog(t, s.effRate*q.share)
	q.paused, q.resumedAt = false, t
}

// setMode forces a queue into mode for one episode from t.
func (s *Sim) setMode(qi int, mode string, t int64) {
	q := &s.queues[qi]
	q.override, q.overAt, q.overUntil = mode, t, t+episode
}
