package acct

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/verdict"
	"github.com/pmta-agent/pmta-agent/agent/zerofill"
)

// Config configures the accounting tailer, and the aggregation of Backfill.
// It is the acct: section of the agent's configuration file: the koanf tags
// are its keys, DefaultConfig its defaults and Validate its checks, so that
// a setting is written here once and the config package only composes.
type Config struct {
	// Enabled turns the tailer on; the agent's wiring reads it, the tailer
	// does not.
	Enabled bool `koanf:"enabled"`
	// Globs name the accounting files to follow; a move-to directory is just
	// one more glob.
	Globs []string `koanf:"globs"`
	// StateDir holds the checkpoint and the lock. The wiring sets it (a
	// directory under the agent's state_dir); NewTailer requires it.
	StateDir string `koanf:"-"`
	// StartAt is "beginning" or "end": where to start in the files present
	// at the very first start, when there is no checkpoint.
	StartAt string `koanf:"start_at"`
	// Interval is the aggregation window, whole seconds dividing an hour.
	Interval time.Duration `koanf:"interval"`
	// Grace is how long after an interval's end the tailer waits for its
	// records before closing it.
	Grace time.Duration `koanf:"grace"`
	// PollEvery is how often the files are scanned and read.
	PollEvery time.Duration `koanf:"poll_every"`
	// FingerprintSize is how many leading bytes identify a file. It has no
	// key: a checkpoint's fingerprints are only comparable at one size.
	FingerprintSize int `koanf:"-"`
	// TopDiag is how many dsnDiag patterns per (type, isp) and interval are
	// kept; the rest fold into "other".
	TopDiag int `koanf:"top_diag"`
	// MaxLineBytes bounds one record; longer ones are skipped.
	MaxLineBytes int `koanf:"max_line_bytes"`
	// MaxClockSkew is how far past the clock a record's timeLogged may be;
	// MaxAge how far behind it while tailing (0: any age; Backfill takes
	// any age). Records outside, and those before 1990 or after 2200, are
	// counted per reason and not aggregated.
	MaxClockSkew time.Duration `koanf:"max_clock_skew"`
	MaxAge       time.Duration `koanf:"max_age"`
	// Views are the dimension sets the counts are emitted in, each as its
	// own measurement with exact sums (see View): the series budget.
	Views []View `koanf:"views"`
	// SourceIPs and Pools map a vmta to its source IP and pool, to fill in
	// records that lack dlvSourceIp or vmtaPool (the config package
	// derives them from PowerMTA's configuration).
	SourceIPs map[string]string `koanf:"-"`
	Pools     map[string]string `koanf:"-"`
	// Verdict sets the IP vs pool verdicts judged from the closed
	// intervals (pmta_verdict; see package verdict). Its zero value is
	// off: DefaultConfig turns it on.
	Verdict verdict.Config `koanf:"verdict"`
	// VerdictWindow is a window to carry on with — the one of the tailer
	// a reload replaces — when it has Verdict's window and every (it
	// takes the thresholds on); nil or another window or step: a new one.
	VerdictWindow *verdict.Window `koanf:"-"`
}

// DefaultConfig returns the defaults of every setting: the values of
// deploy/pmta-agent.example.yaml, and the only place they are written.
func DefaultConfig() Config {
	return Config{
		Enabled:         false,
		Globs:           DefaultGlobs(),
		StartAt:         "end",
		Interval:        10 * time.Second,
		Grace:           500 * time.Millisecond,
		PollEvery:       500 * time.Millisecond,
		FingerprintSize: 1024,
		TopDiag:         20,
		MaxLineBytes:    1 << 20,
		MaxClockSkew:    5 * time.Minute,
		MaxAge:          7 * 24 * time.Hour,
		Views:           DefaultViews(),
		Verdict:         verdict.DefaultConfig(),
	}
}

// DefaultGlobs returns the stock PowerMTA accounting file locations.
func DefaultGlobs() []string {
	return []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/diag-*.csv"}
}

// withDefaults fills the zero fields from DefaultConfig, for tests and
// library callers that set only what they care about. MaxAge is left alone:
// its zero means "any age", not "unset". Enabled and StateDir have no
// default.
func (c Config) withDefaults() Config {
	zerofill.From(&c, DefaultConfig(), "Globs", "StartAt", "Interval", "Grace", "PollEvery", "FingerprintSize",
		"TopDiag", "MaxLineBytes", "MaxClockSkew", "Views")
	return c
}

// Validate returns every problem of the settings, each starting with its key
// relative to the acct: section ("interval: ...", "globs[1]: ..."), so that
// the config package can prefix the section and report them with the rest.
// It checks the settings whether or not Enabled is set; the caller decides
// whether a disabled section is checked. StateDir is not checked here: it is
// no setting of the file, and NewTailer requires it.
func (c Config) Validate() []error {
	var p problems
	if len(c.Globs) == 0 {
		p.add("globs", "must list at least one pattern")
	}
	for i, g := range c.Globs {
		if _, err := filepath.Match(g, ""); err != nil {
			p.add(fmt.Sprintf("globs[%d]", i), fmt.Sprintf("%q is not a valid pattern: %v", g, err))
		}
	}
	if c.StartAt != "beginning" && c.StartAt != "end" {
		p.add("start_at", fmt.Sprintf("is %q, want one of beginning, end", c.StartAt))
	}
	c.validateAggregation(&p, true)
	p.positive("grace", c.Grace)
	p.positive("poll_every", c.PollEvery)
	if c.FingerprintSize < 16 {
		p.add("fingerprint_size", "must be at least 16")
	}
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < time.Hour) {
		p.add("max_age", fmt.Sprintf("(%s) must be 0 (any age) or at least 1h", c.MaxAge))
	}
	iv := c.Interval // the verdicts' step is checked against a valid one only
	if iv <= 0 || iv%time.Second != 0 || time.Hour%iv != 0 {
		iv = 0
	}
	return append(p, c.Verdict.Validate(iv)...)
}

// validateAggregation checks the settings a backfill shares with tailing:
// whole-second intervals, which divide an hour when lineUp (so that live
// intervals line up across servers; a backfill may use any, such as 7s),
// the diag cap, the line cap and the clock skew.
func (c Config) validateAggregation(p *problems, lineUp bool) {
	p.positive("interval", c.Interval)
	if c.Interval > 0 && c.Interval%time.Second != 0 {
		p.add("interval", fmt.Sprintf("(%s) must be a whole number of seconds", c.Interval))
	} else if lineUp && c.Interval > 0 && time.Hour%c.Interval != 0 {
		p.add("interval", fmt.Sprintf("(%s) must divide an hour evenly so intervals line up across servers", c.Interval))
	}
	if c.TopDiag < 1 {
		p.add("top_diag", "must be at least 1")
	}
	if c.MaxLineBytes < 1024 {
		p.add("max_line_bytes", "must be at least 1024")
	}
	p.positive("max_clock_skew", c.MaxClockSkew)
	validateViews(p, c.Views)
}

// problems collects Validate's errors.
type problems []error

func (p *problems) add(key, msg string) { *p = append(*p, fmt.Errorf("%s: %s", key, msg)) }

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, fmt.Sprintf("must be a positive duration such as 10s (is %s)", d))
	}
}
