package sim

import "strings"

// rateKey names a deferral setting narrower than a whole ISP: target is a
// domain or an ISP as the agent's provider map names it, who a source IP or
// a pool name.
type rateKey struct{ target, who string }

// SetIPDeferralRate makes frac of the delivery attempts from one source IP
// to isp defer, e.g. ("yahoo", "203.0.113.21", 0.4): the IP's reputation at
// that provider went bad while its pool-mates are fine. ip is a source IP or
// the name of the vmta that sends from it; isp is a provider name as the
// agent's ISP map gives it (google, yahoo, microsoft, …) or a single domain.
// frac < 0 restores what applied before. It beats a pool's rate
// (SetPoolDeferralRate), which beats the ISP's (SetDeferralRate). The
// accounting records written from then on carry it (t records from that IP
// in that share of its d, t and b records to isp), and, as for
// SetDeferralRate, high rates push the IP's queues into backoff.
func (s *Sim) SetIPDeferralRate(isp, ip string, frac float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	isp, who := norm(isp), norm(ip)
	if addr, ok := s.sourceIP(who); ok {
		who = addr
	} else {
		s.log.Warn("deferral rate for a source IP the model does not have", "ip", ip)
	}
	s.setOverride(s.ipOverride, rateKey{isp, who}, frac)
	s.log.Info("deferral rate set", "isp", isp, "ip", who, "frac", frac)
}

// SetPoolDeferralRate makes frac of the delivery attempts from every source
// IP of pool (e.g. "pool-microsoft") to isp defer: the provider throttles
// the whole pool, which points at how it is configured rather than at one
// IP's reputation. isp and frac are as for SetIPDeferralRate, and an IP's own
// rate beats its pool's.
func (s *Sim) SetPoolDeferralRate(isp, pool string, frac float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	isp, pool = norm(isp), norm(pool)
	if poolIndex(pool) < 0 {
		s.log.Warn("deferral rate for a pool the model does not have", "pool", pool)
	}
	s.setOverride(s.poolOverride, rateKey{isp, pool}, frac)
	s.log.Info("deferral rate set", "isp", isp, "pool", pool, "frac", frac)
}

// setOverride changes one setting between two segments, so that what was
// delivered so far keeps the old rate. The caller holds mu.
func (s *Sim) setOverride(m map[rateKey]float64, k rateKey, frac float64) {
	s.advance()
	s.fold()
	if frac < 0 {
		delete(m, k)
	} else {
		m[k] = min(frac, 0.95)
	}
	s.newSegment()
}

// sourceIP resolves a source IP or vmta name to the model's source IP.
func (s *Sim) sourceIP(who string) (string, bool) {
	for i := range s.vmtas {
		if v := &s.vmtas[i]; v.ip == who || v.name == who {
			return v.ip, true
		}
	}
	return who, false
}

// poolIndex is the index of the pool named name, -1 when there is none.
func poolIndex(name string) int {
	for p := range poolDefs {
		if poolDefs[p].name == name {
			return p
		}
	}
	return -1
}

// poolVMTAs returns the indexes of pool p's vmtas, in the model's order.
func (s *Sim) poolVMTAs(p int) []int {
	var out []int
	for i := range s.vmtas {
		if s.vmtas[i].pool == p {
			out = append(out, i)
		}
	}
	return out
}

// rateAt is the deferral share of the running segment over the queues to
// target (a domain or an ISP) from the vmtas that keep says yes to, weighted
// by their attempts; -1 when there are none. The caller holds mu.
func (s *Sim) rateAt(target string, keep func(vi int) bool) float64 {
	var att, def float64
	for i := range s.queues {
		q := &s.queues[i]
		d := &s.domains[q.di]
		if (d.name != target && d.isp != target) || !keep(q.vi) {
			continue
		}
		att += q.share
		def += q.share * s.seg.df[i]
	}
	if att == 0 {
		return -1
	}
	return def / att
}

func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
