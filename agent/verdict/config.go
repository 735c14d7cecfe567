package verdict

import (
	"fmt"
	"time"
)

// Config is the acct.verdict: section of the agent's configuration: the
// koanf tags are its keys, DefaultConfig its defaults and Validate its
// checks.
type Config struct {
	// Enabled turns the verdicts on (they cost a few hundred bytes per
	// ISP × pool × source IP and a point per such row every Every).
	Enabled bool `koanf:"enabled"`
	// Window is how much accounting time a verdict covers.
	Window time.Duration `koanf:"window"`
	// Every is how often the window slides and the verdicts are emitted;
	// it divides Window and is a multiple of the accounting interval.
	Every time.Duration `koanf:"every"`
	// MinAttempts is the minimum volume: an IP with fewer attempts (d + t
	// + b records) in the window is not judged (verdict too_few), so that
	// a handful of records cannot flag it.
	MinAttempts int64 `koanf:"min_attempts"`
	// WarnPct is the deferral warning threshold in percent: the shipped
	// alert rules' 5 %.
	WarnPct float64 `koanf:"warn_pct"`
}

// DefaultConfig returns the defaults, the values of
// deploy/pmta-agent.example.yaml.
func DefaultConfig() Config {
	return Config{
		Enabled:     true,
		Window:      15 * time.Minute,
		Every:       time.Minute,
		MinAttempts: 200,
		WarnPct:     5,
	}
}

// MaxWindow bounds Window: a day of buckets is as far back as the
// comparison of a pool's IPs means anything, and what the agent holds.
const MaxWindow = 24 * time.Hour

// Validate returns the problems of c, each "key: what is wrong", for an
// accounting interval of interval (0: not checked against one).
func (c Config) Validate(interval time.Duration) []error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("verdict.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.Every <= 0 || c.Every%time.Second != 0:
		add("every", "must be whole seconds such as 1m (is %s)", c.Every)
	case interval > 0 && c.Every%interval != 0:
		add("every", "%s is not a multiple of acct.interval %s", c.Every, interval)
	}
	switch {
	case c.Window <= 0 || c.Window > MaxWindow:
		add("window", "must be a positive duration up to %s such as 15m (is %s)", MaxWindow, c.Window)
	case c.Every > 0 && (c.Window < c.Every || c.Window%c.Every != 0):
		add("window", "%s is not a multiple of verdict.every %s", c.Window, c.Every)
	case c.Every > 0 && c.Window/c.Every > maxBuckets:
		add("window", "%s holds more than %d steps of verdict.every %s; make every longer", c.Window, maxBuckets, c.Every)
	}
	if c.MinAttempts < 1 {
		add("min_attempts", "must be 1 or more (is %d); 200 keeps a few records from flagging an IP", c.MinAttempts)
	}
	if !(c.WarnPct > 0 && c.WarnPct < 100) {
		add("warn_pct", "must be a percentage above 0 and below 100 (is %v)", c.WarnPct)
	}
	return errs
}

// maxBuckets bounds the steps a window holds.
const maxBuckets = 1440
