package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The scenarios' rates. ip-reputation's 40 % at one yahoo IP, against the
// ≈3.5 % of its pool-mates, is far above the 5 % warning and, with the other
// IPs near the median, a robust score in the tens; at the demo's 200
// records/s one yahoo IP logs about 5 attempts a second, so the verdict's
// 200-attempt minimum is there within a minute. pool-throttle's 30 % on
// every IP of pool-microsoft puts all of them above the warning at once:
// pool-wide, with no IP standing out.
const (
	ipReputationRate = 0.40
	poolThrottleRate = 0.30
)

// TightGoogleDeferral is the share of attempts google defers before
// config-fix when the config is written for that scenario
// (ConfigOptions.GoogleDeferral); config-fix halves it to 4 %.
//
// Why 8 %: google's d, t and b records (gmail.com and googlemail.com) are
// 22–27 % of the records the sim writes, the lower end with ip-reputation
// and pool-throttle on, so 2 minutes at 200 records/s give n ≈ 5,400
// attempts on each side of the change. The pooled two-proportion
// z of a rate p halved is about (p/2) / √(p̄(1−p̄)·2/n) with p̄ = 3p/4:
//   - the model's own 1.4 % → 0.7 %: z ≈ 3.6, and as z spreads by about 1,
//     |z| ≥ 2.58 only ≈ 85 % of the time;
//   - 8 % → 4 %: z ≈ 8.8, never below 2.58 in practice, and still ≈ 4.4
//     with a quarter of that volume.
//
// 8 % is also above the 5 % warning and 4 % below it: the fix visibly ends
// a pool-wide problem at gmail.
const TightGoogleDeferral = 0.08

// scenarioNames are the names ApplyScenario knows, in the order of its doc.
var scenarioNames = []string{"ip-reputation", "pool-throttle", "config-fix", "config-noop", "clear"}

// ScenarioNames returns the names ApplyScenario knows.
func ScenarioNames() []string { return slices.Clone(scenarioNames) }

// IsConfigScenario says whether scenario name rewrites the file WriteConfig
// wrote, and so needs one.
func IsConfigScenario(name string) bool { return name == "config-fix" || name == "config-noop" }

// ApplyScenario puts the model in a named situation and says in one line
// what it did:
//   - "ip-reputation": the first IP of pool-yahoo defers 40 % at yahoo; the
//     pool's other IPs keep the model's rate (≈3.5 %). An IP's reputation.
//   - "pool-throttle": every IP of pool-microsoft defers 30 % at microsoft.
//     A provider throttling the whole pool: configuration.
//   - "config-fix": writes the config file again with <domain $gmail>
//     max-msg-rate doubled, and halves google's deferral share from now on
//     (see ConfigOptions.GoogleDeferral for where it starts).
//   - "config-noop": writes the config file again with <domain $yahoo>
//     max-smtp-out raised by 2 (10 → 12) and changes no rate.
//   - "clear": takes back every rate the above (and WriteConfig's
//     GoogleDeferral) set, and every SetIPDeferralRate and
//     SetPoolDeferralRate; the config file stays as it is.
//
// The config scenarios fail before WriteConfig.
func (s *Sim) ApplyScenario(name string) (string, error) {
	switch norm(name) {
	case "ip-reputation":
		return s.ipReputation()
	case "pool-throttle":
		return s.poolThrottle()
	case "config-fix":
		return s.configFix()
	case "config-noop":
		return s.configNoop()
	case "clear":
		return s.clearScenarios(), nil
	}
	return "", fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(scenarioNames, ", "))
}

func (s *Sim) ipReputation() (string, error) {
	members := s.poolVMTAs(poolYahoo)
	if len(members) == 0 {
		return "", errors.New("ip-reputation: the model has no vmta in pool-yahoo")
	}
	v := s.vmtas[members[0]]
	s.SetIPDeferralRate("yahoo", v.ip, ipReputationRate)
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.rateAt("yahoo", func(vi int) bool { return s.vmtas[vi].pool == poolYahoo && vi != members[0] })
	desc := fmt.Sprintf("ip-reputation: %s (%s, pool-yahoo) defers %s at yahoo", v.ip, v.name, pct(ipReputationRate))
	if rest >= 0 {
		desc += fmt.Sprintf("; the pool's other %d IPs stay at %s", len(members)-1, pct(rest))
	}
	return desc, nil
}

func (s *Sim) poolThrottle() (string, error) {
	members := s.poolVMTAs(poolMicrosoft)
	if len(members) == 0 {
		return "", errors.New("pool-throttle: the model has no vmta in pool-microsoft")
	}
	s.SetPoolDeferralRate("microsoft", poolDefs[poolMicrosoft].name, poolThrottleRate)
	ips := make([]string, len(members))
	for i, vi := range members {
		ips[i] = s.vmtas[vi].ip
	}
	return fmt.Sprintf("pool-throttle: all %d IPs of pool-microsoft (%s) defer %s at microsoft",
		len(ips), strings.Join(ips, ", "), pct(poolThrottleRate)), nil
}

func (s *Sim) configFix() (string, error) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	st, next, err := s.rewriteConfig("config-fix", "gmail", func(c *configState) { c.gmailRate *= 2 })
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.rateAt("google", func(int) bool { return true })
	cur, ok := s.dfOverride["google"]
	if !ok {
		cur = before
	}
	s.setScenarioRate("google", cur/2)
	after := s.rateAt("google", func(int) bool { return true })
	return fmt.Sprintf("config-fix: <domain $gmail> max-msg-rate %d/h → %d/h in %s; google defers %s → %s",
		st.gmailRate, next.gmailRate, st.path, pct(before), pct(after)), nil
}

func (s *Sim) configNoop() (string, error) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	st, next, err := s.rewriteConfig("config-noop", "yahoo", func(c *configState) { c.yahooSMTOut += 2 })
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("config-noop: <domain $yahoo> max-smtp-out %d → %d in %s; no rate changes",
		st.yahooSMTOut, next.yahooSMTOut, st.path), nil
}

// rewriteConfig writes the config again with one thing changed (change
// applied to a copy of what it holds) and returns the state before and
// after. The config must have a <domain $macro>; the caller holds cfgMu.
func (s *Sim) rewriteConfig(scenario, macro string, change func(*configState)) (before, after *configState, err error) {
	st, err := s.configFor(scenario, macro)
	if err != nil {
		return nil, nil, err
	}
	next := *st
	change(&next)
	if err := s.writeConfig(&next); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", scenario, err)
	}
	s.cfg = &next
	return st, &next, nil
}

// configFor returns the written config, which must have a <domain $macro>.
// The caller holds cfgMu.
func (s *Sim) configFor(scenario, macro string) (*configState, error) {
	if s.cfg == nil {
		return nil, fmt.Errorf("%s: no PowerMTA config written yet (WriteConfig, or pmta-sim -config-out FILE)", scenario)
	}
	if _, groups := s.domainMacros(); groups[macro] == nil {
		return nil, fmt.Errorf("%s: the model has no %s domains, so the config has no <domain $%s>", scenario, macro, macro)
	}
	return s.cfg, nil
}

// setScenarioRate sets isp's rate as SetDeferralRate does, remembering it
// for "clear". The caller holds mu.
func (s *Sim) setScenarioRate(isp string, frac float64) {
	s.advance()
	s.fold()
	s.dfOverride[isp] = min(frac, 0.95)
	if !slices.Contains(s.scenISP, isp) {
		s.scenISP = append(s.scenISP, isp)
	}
	s.newSegment()
	s.log.Info("deferral rate set", "isp", isp, "frac", frac)
}

func (s *Sim) clearScenarios() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.fold()
	nIP, nPool, isps := len(s.ipOverride), len(s.poolOverride), s.scenISP
	clear(s.ipOverride)
	clear(s.poolOverride)
	for _, isp := range isps {
		delete(s.dfOverride, isp)
	}
	s.scenISP = nil
	s.newSegment()
	s.log.Info("scenario rates cleared", "ip", nIP, "pool", nPool, "isp", isps)
	desc := fmt.Sprintf("clear: %d per-IP and %d per-pool deferral rates removed", nIP, nPool)
	if len(isps) > 0 {
		desc += fmt.Sprintf(", %s back to the model's rate", strings.Join(isps, ", "))
	}
	return desc
}

// pct writes a share as a percentage with one decimal.
func pct(f float64) string { return fmt.Sprintf("%.1f %%", 100*f) }
