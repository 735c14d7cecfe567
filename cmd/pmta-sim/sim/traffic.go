package sim

import "math"

// Indexes into counts: the traffic counters PowerMTA keeps per window.
const (
	cOutRcp = iota
	cOutKB  // tenths of a kilobyte, so sums stay exact
	cInRcp
	cInMsg
	cInKB // tenths
	cBounceProc
	cFBLProc
	nCounts
)

// counts is one set of traffic counters.
type counts [nCounts]int64

// window is the ring of per-second counters behind lastMin and lastHr.
const window = 3600

// Message sizes in tenths of a kilobyte.
const (
	meanOutTenths = 487
	meanInTenths  = 487
	rcptsPerMsgIn = 45
)

// segment holds what stays constant between two events that change delivery
// (pause, resume, deferral rate, counter reset). Per-queue delivered counts of
// the running segment are an allocation of its running total, so they never
// depend on how often the model was read.
type segment struct {
	delivered  int64
	share      []float64 // delivered share per queue; 0 while paused
	defRatio   []float64 // deferred attempts per delivered recipient
	bncRatio   []float64 // bounces per delivered recipient
	rcpShare   []float64 // share of the queued recipients
	backoffP   []float64
	df, bf     []float64 // attempt fractions per queue
	activeFrac float64   // delivered rate relative to the model as built
}

// deferralFor is the deferred fraction of attempts for queue q. The most
// specific setting wins: one for the queue's source IP at its domain or ISP
// (SetIPDeferralRate), then one for its vmta's pool (SetPoolDeferralRate),
// then one for the domain or ISP (SetDeferralRate), then the model's own; at
// each level a setting for the domain beats one for its ISP.
func (s *Sim) deferralFor(q *queue) float64 {
	d, v := &s.domains[q.di], &s.vmtas[q.vi]
	targets := [2]string{d.name, d.isp}
	for _, t := range targets {
		if f, ok := s.ipOverride[rateKey{t, v.ip}]; ok {
			return f
		}
	}
	for _, t := range targets {
		if f, ok := s.poolOverride[rateKey{t, poolDefs[v.pool].name}]; ok {
			return f
		}
	}
	for _, t := range targets {
		if f, ok := s.dfOverride[t]; ok {
			return f
		}
	}
	return d.df
}

// newSegment recomputes the segment constants from the current state.
func (s *Sim) newSegment() {
	n := len(s.queues)
	seg := segment{
		share: make([]float64, n), defRatio: make([]float64, n), bncRatio: make([]float64, n),
		rcpShare: make([]float64, n), backoffP: make([]float64, n), df: make([]float64, n), bf: make([]float64, n),
	}
	var active, rsum float64
	for i := range s.queues {
		q := &s.queues[i]
		d := &s.domains[q.di]
		df := s.deferralFor(q)
		bf := d.bf
		if df+bf > 0.95 {
			df = 0.95 - bf
		}
		ok := 1 - df - bf
		seg.df[i], seg.bf[i] = df, bf
		seg.defRatio[i] = df / ok
		seg.bncRatio[i] = bf / ok
		if !q.paused {
			seg.share[i] = q.share * ok
			active += seg.share[i]
		}
		seg.rcpShare[i] = q.share * (1 + 8*df)
		rsum += seg.rcpShare[i]
		p := q.backoffP + 4*math.Max(0, df-d.df)
		if d.class != classSlow {
			p = min(p, 0.95)
		}
		seg.backoffP[i] = p
	}
	for i := range seg.rcpShare {
		seg.rcpShare[i] /= rsum
	}
	if s.baseActive == 0 {
		// The first segment defines the configured rate: with the operator's
		// initial pauses in place the server delivers Options.Rate.
		s.baseActive = active
	}
	if s.baseActive > 0 {
		seg.activeFrac = active / s.baseActive
	}
	s.seg = seg
}

// segParts allocates the running segment over the queues.
func (s *Sim) segParts() (delivered, deferred, bounced []int64) {
	n := len(s.queues)
	delivered, deferred, bounced = make([]int64, n), make([]int64, n), make([]int64, n)
	alloc(s.seg.delivered, s.seg.share, delivered)
	for i, a := range delivered {
		deferred[i] = int64(float64(a) * s.seg.defRatio[i])
		bounced[i] = int64(float64(a) * s.seg.bncRatio[i])
	}
	return delivered, deferred, bounced
}

// fold closes the running segment into the queues' counters and opens a new
// one; call it, after advancing, before anything that changes delivery.
func (s *Sim) fold() {
	d, f, b := s.segParts()
	for i := range s.queues {
		s.queues[i].delivered += d[i]
		s.queues[i].deferred += f[i]
		s.queues[i].bounced += b[i]
	}
	s.newSegment()
}

// diurnal is a gentle day curve of sending volume, peaking at 15:00 UTC; it
// stays within 10 % of the configured rate so that tests can rely on it.
func diurnal(t int64) float64 {
	return 1 + 0.1*math.Sin(2*math.Pi*(float64(t%86400)/86400-0.375))
}

// tick produces the traffic of second t.
func (s *Sim) tick(t int64) {
	var c counts
	if s.rate > 0 {
		h := hash3(s.seed, 0x71c, uint64(t))
		var u [9]float64
		for i := range u {
			h = mix(h)
			u[i] = unit(h)
		}
		r := s.rate * s.seg.activeFrac * diurnal(t) * (0.9 + 0.2*u[0])
		c[cOutRcp] = dither(r, u[1])
		c[cOutKB] = dither(float64(c[cOutRcp])*meanOutTenths*(0.95+0.1*u[2]), u[3])
		c[cInRcp] = dither(r*1.03*(0.8+0.4*u[4]), u[5])
		c[cInMsg] = dither(float64(c[cInRcp])/rcptsPerMsgIn, u[6])
		c[cInKB] = c[cInMsg] * meanInTenths
		c[cBounceProc] = dither(r*0.004, u[7])
		c[cFBLProc] = dither(r*0.0004, u[8])
	}
	s.seg.delivered += c[cOutRcp]

	slot := &s.ring[t%window]
	old := *slot                                    // second t-3600 leaves the hour
	minute := s.ring[((t-60)%window+window)%window] // second t-60 leaves the minute
	for i := range c {
		s.tot[i] += c[i]
		s.sum3600[i] += c[i] - old[i]
		s.sum60[i] += c[i] - minute[i]
	}
	*slot = c
	s.bumpTops()
}

// addNow adds counters (from accounting records) to the current second.
func (s *Sim) addNow(c counts) {
	slot := &s.ring[s.last%window]
	for i := range c {
		slot[i] += c[i]
		s.tot[i] += c[i]
		s.sum3600[i] += c[i]
		s.sum60[i] += c[i]
	}
	s.bumpTops()
}

// bumpTops keeps the per-field high-water marks of both rolling windows.
func (s *Sim) bumpTops() {
	for i := range s.top60 {
		s.top60[i] = max(s.top60[i], s.sum60[i])
		s.top3600[i] = max(s.top3600[i], s.sum3600[i])
	}
}

// resetCounters zeroes every counter, as `pmta reset counters` does.
func (s *Sim) resetCounters() {
	s.fold()
	for i := range s.queues {
		q := &s.queues[i]
		q.delivered, q.deferred, q.bounced = 0, 0, 0
	}
	s.seg.delivered = 0
	s.tot, s.sum60, s.sum3600, s.top60, s.top3600 = counts{}, counts{}, counts{}, counts{}, counts{}
	clear(s.ring)
	s.connInTop, s.connOutTop = 0, 0
}
