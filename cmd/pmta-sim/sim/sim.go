package sim

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Options configures a Sim. The zero value is a usable default model.
type Options struct {
	// Seed makes the model reproducible: the same seed, clock readings and
	// calls give the same values.
	Seed int64
	// Rate is delivered recipients per second (default 50). A negative rate
	// turns the model's own traffic off, so that only accounting records
	// written by an AcctWriter move the counters.
	Rate float64
	// Domains and VMTAs size the model (defaults 40 and 24, at most 400
	// each; GenerateFile allows more). Every vmta has its own source IP.
	Domains, VMTAs int
	// APIKey, when set, must arrive in the X-API-Key header of every request.
	APIKey string
	// Clock is read whenever the model is read (default time.Now). The time
	// zone of its result is the zone the monitor prints times in.
	Clock func() time.Time
	// Start is the startupTime (default three days before the first Clock).
	Start time.Time
	// Hostname is the server's fullHostName (default mta01.sim.example).
	Hostname string
	// Logger receives command and fault-change messages (default: discard).
	Logger *slog.Logger
}

// Sim is a simulated PowerMTA. Every method is safe for concurrent use.
type Sim struct {
	mu sync.Mutex

	seed        uint64
	rate        float64 // own delivered recipients/s, 0 when off
	effRate     float64 // volume the queues are sized for
	targetTotal float64 // typical queued recipients
	apiKey      string
	hostname    string
	clock       func() time.Time
	log         *slog.Logger

	domains    []domain
	vmtas      []vmta
	queues     []queue
	dfOverride map[string]float64 // by domain or ISP (SetDeferralRate)
	// Deferral rates by (domain or ISP, source IP) and (domain or ISP,
	// pool); see deferralFor for which one wins.
	ipOverride, poolOverride map[rateKey]float64
	scenISP                  []string // dfOverride keys that config and scenarios set, for "clear"

	startup int64 // unix seconds
	last    int64 // the second the model has advanced to
	loc     *time.Location

	seg                                 segment
	baseActive                          float64 // delivering share when built
	tot, sum60, sum3600, top60, top3600 counts
	ring                                []counts
	connInTop, connOutTop               int64

	faults  Faults
	fseq    uint64 // requests seen, drives fault draws
	writers uint64 // accounting writers created

	// cfgMu orders the writes of the PowerMTA config file (taken before mu,
	// never inside it); cfg is what was last written, nil before WriteConfig.
	cfgMu sync.Mutex
	cfg   *configState
}

// New builds a model from o.
func New(o Options) *Sim { return newSim(o, maxServed) }

// maxServed bounds Domains and VMTAs of a model that serves the API, whose
// listings hold a row per queue; maxGenerated those of a file generator,
// sized for a large sender's fleet member (5,000 domains, 500 source IPs).
const (
	maxServed    = 400
	maxGenerated = 20000
)

func newSim(o Options, limit int) *Sim {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Rate == 0 {
		o.Rate = 50
	}
	if o.Domains <= 0 {
		o.Domains = 40
	}
	if o.VMTAs <= 0 {
		o.VMTAs = 24
	}
	o.Domains, o.VMTAs = min(o.Domains, limit), min(o.VMTAs, limit)
	if o.Hostname == "" {
		o.Hostname = "mta01.sim.example"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	now := o.Clock()
	if o.Start.IsZero() {
		o.Start = now.Add(-72 * time.Hour)
	}
	s := &Sim{
		seed:         uint64(o.Seed)*golden ^ 0x5eed,
		rate:         max(o.Rate, 0),
		effRate:      o.Rate,
		apiKey:       o.APIKey,
		hostname:     o.Hostname,
		clock:        o.Clock,
		log:          o.Logger,
		dfOverride:   map[string]float64{},
		ipOverride:   map[rateKey]float64{},
		poolOverride: map[rateKey]float64{},
		startup:      o.Start.Unix(),
		last:         o.Start.Unix(),
		loc:          now.Location(),
		ring:         make([]counts, window),
	}
	if s.effRate <= 0 {
		s.effRate = 50
	}
	// Ten minutes of volume queued is a comfortable, non-alerting depth.
	s.targetTotal = 600 * s.effRate
	s.domains, s.vmtas, s.queues = buildTopology(s.seed, o.Domains, o.VMTAs)
	s.initialPauses(now.Unix())
	s.newSegment()
	return s
}

// initialPauses pauses two queues the way an operator would have: one
// Microsoft queue 45 minutes ago after a rate-limit event, one long-tail queue
// six hours ago.
func (s *Sim) initialPauses(now int64) {
	r := rand.New(rand.NewPCG(s.seed, 0x9a05e))
	var ms, tail []int
	for i := range s.queues {
		d := &s.domains[s.queues[i].di]
		switch {
		case d.class == classMicrosoft && d.name == "outlook.com":
			ms = append(ms, i)
		case d.pool == poolGeneral && d.class == classGeneric:
			tail = append(tail, i)
		}
	}
	at := func(ago int64) int64 { return max(s.startup, now-ago) }
	if len(ms) > 0 {
		s.pause(ms[r.IntN(len(ms))], at(2700))
	}
	if len(tail) > 0 {
		s.pause(tail[r.IntN(len(tail))], at(6*3600))
	}
}

// advance moves the model to the clock's current second. The caller holds mu.
func (s *Sim) advance() {
	now := s.clock()
	s.loc = now.Location()
	sec := now.Unix()
	for t := s.last + 1; t <= sec; t++ {
		s.tick(t)
	}
	s.last = max(s.last, sec)
}

// Snapshot advances the model to now and returns exactly the values the
// handlers would serve at this moment.
func (s *Sim) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	return s.snapshot()
}

// Restart simulates a PowerMTA restart: startupTime becomes now and every
// counter starts again from zero. Queued mail, pauses and modes survive, as
// they live in the spool.
func (s *Sim) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.resetCounters()
	s.startup = s.last
	s.log.Info("simulated restart", "startupTime", time.Unix(s.startup, 0).In(s.loc))
}

// SetDeferralRate makes frac of delivery attempts to isp defer (e.g.
// ("yahoo", 0.2)). isp is a provider name as the agent's ISP map gives it
// (google, yahoo, microsoft, …) or a single domain; frac < 0 restores the
// model's default for it. High rates also push that ISP's queues into backoff.
// A rate for one source IP (SetIPDeferralRate) or pool (SetPoolDeferralRate)
// at the ISP beats this one.
func (s *Sim) SetDeferralRate(isp string, frac float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.fold()
	isp = strings.ToLower(strings.TrimSpace(isp))
	if frac < 0 {
		delete(s.dfOverride, isp)
	} else {
		s.dfOverride[isp] = min(frac, 0.95)
	}
	s.newSegment()
	s.log.Info("deferral rate set", "isp", isp, "frac", frac)
}

// SetQueueBoost adds rcp queued recipients on top of the natural queue depth,
// spread over all queues by their usual share (e.g. 90,000 to cross the
// critical 100,000 alert). It replaces an earlier boost; 0 removes it.
func (s *Sim) SetQueueBoost(rcp int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	parts := make([]int64, len(s.queues))
	alloc(max(rcp, 0), s.seg.rcpShare, parts)
	for i := range s.queues {
		s.queues[i].boost = parts[i]
	}
}
