package acct

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// TestDefaultConfig pins the defaults: those of the acct: section of
// deploy/pmta-agent.example.yaml.
func TestDefaultConfig(t *testing.T) {
	want := Config{
		Enabled: false, Globs: []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/diag-*.csv"}, StartAt: "end",
		Interval: 10 * time.Second, Grace: 500 * time.Millisecond, PollEvery: 500 * time.Millisecond,
		FingerprintSize: 1024, TopDiag: 20, MaxLineBytes: 1048576, MaxClockSkew: 5 * time.Minute, MaxAge: 168 * time.Hour,
		Views: []View{
			{Name: "pmta_acct", Tags: []string{"type", "isp", "vmta", "pool", "source_ip"}},
			{Name: "pmta_acct_domain", Tags: []string{"type", "domain", "isp", "bounce_cat", "dsn_class"}, MaxDomains: 500},
		},
		Verdict: verdict.Config{Enabled: true, Window: 15 * time.Minute, Every: time.Minute, MinAttempts: 200, WarnPct: 5},
	}
	if got := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("the defaults do not validate: %v", errs)
	}
}

// TestConfigKeys pins the koanf keys, the names of the acct: section.
func TestConfigKeys(t *testing.T) {
	want := map[string]string{
		"Enabled": "enabled", "Globs": "globs", "StateDir": "-", "StartAt": "start_at", "Interval": "interval",
		"Grace": "grace", "PollEvery": "poll_every", "FingerprintSize": "-", "TopDiag": "top_diag",
		"MaxLineBytes": "max_line_bytes", "MaxClockSkew": "max_clock_skew", "MaxAge": "max_age", "Views": "views", "SourceIPs": "-", "Pools": "-",
		"Verdict": "verdict", "VerdictWindow": "-",
	}
	typ := reflect.TypeFor[Config]()
	if typ.NumField() != len(want) {
		t.Fatalf("Config has %d fields, the test knows %d", typ.NumField(), len(want))
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if got := f.Tag.Get("koanf"); got != want[f.Name] {
			t.Errorf("%s: koanf key %q, want %q", f.Name, got, want[f.Name])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want []string // the start of each error, in order
	}{
		{"interval not dividing an hour", func(c *Config) { c.Interval = 7 * time.Second },
			[]string{"interval: (7s) must divide an hour evenly so intervals line up across servers"}},
		{"interval not whole seconds", func(c *Config) { c.Interval = 1500 * time.Millisecond },
			[]string{"interval: (1.5s) must be a whole number of seconds"}},
		{"interval zero", func(c *Config) { c.Interval = 0 }, []string{"interval: must be a positive duration"}},
		{"bad glob", func(c *Config) { c.Globs = []string{"/a/*.csv", "/b/[.csv"} }, []string{`globs[1]: "/b/[.csv" is not a valid pattern`}},
		{"no globs", func(c *Config) { c.Globs = nil }, []string{"globs: must list at least one pattern"}},
		{"start_at", func(c *Config) { c.StartAt = "middle" }, []string{`start_at: is "middle", want one of beginning, end`}},
		{"durations", func(c *Config) { c.Grace, c.PollEvery, c.MaxClockSkew = 0, -time.Second, 0 },
			[]string{"max_clock_skew: must be a positive", "grace: must be a positive", "poll_every: must be a positive"}},
		{"sizes", func(c *Config) { c.FingerprintSize, c.TopDiag, c.MaxLineBytes = 8, 0, 100 },
			[]string{"top_diag: must be at least 1", "max_line_bytes: must be at least 1024", "fingerprint_size: must be at least 16"}},
		{"max_age under an hour", func(c *Config) { c.MaxAge = 30 * time.Minute }, []string{"max_age: (30m0s) must be 0 (any age) or at least 1h"}},
		{"max_age 0 is any age", func(c *Config) { c.MaxAge = 0 }, nil},
		{"max_age negative", func(c *Config) { c.MaxAge = -time.Hour }, []string{"max_age: (-1h0m0s) must be 0"}},
		{"verdict", func(c *Config) { c.Verdict.Every = 15 * time.Second }, []string{"verdict.every: 15s is not a multiple of acct.interval 10s"}},
		{"verdict off", func(c *Config) { c.Verdict = verdict.Config{} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			errs := c.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %q, want %d starting %q", errs, len(tc.want), tc.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tc.want[i]) {
					t.Errorf("error %d: %q, want it to start %q", i, err, tc.want[i])
				}
			}
		})
	}
}

// Zero fields take the defaults, but for MaxAge, whose zero means any age,
// and Verdict, whose zero is off: a library caller asks for verdicts.
func TestConfigWithDefaults(t *testing.T) {
	got := Config{StateDir: "/s", Globs: []string{"/x/*.csv"}}.withDefaults()
	want := DefaultConfig()
	want.StateDir, want.Globs, want.MaxAge, want.Verdict = "/s", []string{"/x/*.csv"}, 0, verdict.Config{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("withDefaults = %+v, want %+v", got, want)
	}
}

// NewTailer and Backfill check their settings with Validate: the errors
// carry the keys. A backfill's interval need not divide an hour.
func TestConfigCheckedByTailerAndBackfill(t *testing.T) {
	_, err := NewTailer(Config{StateDir: t.TempDir(), Interval: 7 * time.Second}, agent.NewISPMap(nil), discardLogger())
	if err == nil || !strings.Contains(err.Error(), "interval: (7s) must divide an hour evenly") {
		t.Fatalf("NewTailer with a 7 s interval: %v", err)
	}
	_, err = NewTailer(Config{}, agent.NewISPMap(nil), discardLogger())
	if err == nil || !strings.Contains(err.Error(), "StateDir: required") {
		t.Fatalf("NewTailer without a state directory: %v", err)
	}
	_, err = Backfill(context.Background(), nil, BackfillOptions{Config: Config{Interval: 2500 * time.Millisecond, MaxLineBytes: 10}, Lag: -time.Second},
		agent.NewISPMap(nil), func(agent.Batch) {}, nil)
	var msgs []string
	for _, e := range unjoin(err) {
		msgs = append(msgs, e.Error())
	}
	want := []string{"interval: (2.5s) must be a whole number of seconds",
		"max_line_bytes: must be at least 1024", "lag: (-1s) must be 0 (the default) or more"}
	if !slices.Equal(msgs, want) {
		t.Fatalf("Backfill errors %q, want %q", msgs, want)
	}
	// The tailing settings take no part in a backfill.
	_, err = Backfill(context.Background(), nil, BackfillOptions{Config: Config{StartAt: "middle", MaxAge: time.Minute}},
		agent.NewISPMap(nil), func(agent.Batch) {}, nil)
	if err != nil {
		t.Fatalf("Backfill checked a tailing setting: %v", err)
	}
}

// unjoin returns the errors errors.Join put together under err's wrapping.
func unjoin(err error) []error {
	for err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
		err = errors.Unwrap(err)
	}
	return nil
}
