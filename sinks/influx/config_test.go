package influx

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

func TestDefaultConfig(t *testing.T) {
	want := Config{URL: "http://127.0.0.1:8086", Bucket: "pmta", Gzip: true, BatchSize: agent.DefaultBatchSize,
		Timeout: 10 * time.Second, Precision: time.Nanosecond}
	if got := DefaultConfig(); got != want {
		t.Errorf("DefaultConfig() = %+v, want %+v", got, want)
	}
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Errorf("the defaults do not validate: %v", errs)
	}
}

// TestValidate: every problem, each starting with its key in the section.
func TestValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.pem")
	cases := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"no url", func(c *Config) { c.URL = "" }, []string{"url: must be set"}},
		{"bad url", func(c *Config) { c.URL = "http://a b:1/%zz" }, []string{"url: is not a valid URL"}},
		{"scheme", func(c *Config) { c.URL = "ftp://influx:8086" }, []string{`url: "ftp://influx:8086" must start with http:// or https://`}},
		{"no host", func(c *Config) { c.URL = "http://" }, []string{`url: "http:" has no host`}},
		{"credentials", func(c *Config) { c.URL = "https://u:pw-secret@influx:8086" }, []string{"url: must not carry credentials"}},
		{"no bucket", func(c *Config) { c.Bucket = "" }, []string{`bucket: must be set (InfluxDB 1.8: "database/retention-policy" or "database")`}},
		{"batch size", func(c *Config) { c.BatchSize = 0 }, []string{"batch_size: must be at least 1"}},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"timeout: must be a positive duration such as 10s (is -1s)"}},
		{"clear text token", func(c *Config) { c.URL, c.Token = "http://influx.example:8086", "tok" },
			[]string{"token: would be sent in clear text over http:// to a remote host; use https://"}},
		{"tls", func(c *Config) { c.TLS = transport.TLSConfig{CAFile: missing, CertFile: missing} },
			[]string{"tls.ca_file: cannot be read: ", "tls.cert_file: cannot be read: ", "tls: cert_file and key_file go together"}},
		{"everything at once", func(c *Config) { c.URL, c.Bucket, c.BatchSize, c.Timeout = "", "", -1, 0 },
			[]string{"url: ", "bucket: ", "batch_size: ", "timeout: "}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			errs := cfg.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d problems", errs, len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, err, tt.want[i])
				}
				if strings.Contains(err.Error(), "pw-secret") || strings.Contains(err.Error(), "tok\n") {
					t.Errorf("problem %q shows a secret", err)
				}
			}
		})
	}
	for _, u := range []string{"http://127.0.0.1:8086", "http://localhost:8086", "http://[::1]:8086", "https://influx.example"} {
		cfg := DefaultConfig()
		cfg.URL, cfg.Token = u, "tok"
		if errs := cfg.Validate(); len(errs) != 0 {
			t.Errorf("%s with a token: %v", u, errs)
		}
	}
}

// TestNewLeavesSecretRulesToValidate: a program may put credentials in the
// URL or send a token to a plain-http host; only a configuration file may
// not. The sink still keeps those secrets out of what it shows (see
// TestSecretsNeverShown).
func TestNewLeavesSecretRulesToValidate(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "http://admin:pw-secret@influx.example:8086", Bucket: "b"},
		{URL: "http://influx.example:8086", Bucket: "b", Token: "tok"},
	} {
		if len(cfg.Validate()) == 0 {
			t.Errorf("Validate accepted %v", cfg)
		}
		s, err := New(cfg, discardLogger())
		if err != nil {
			t.Errorf("New(%v): %v", cfg, err)
			continue
		}
		_ = s.Close()
	}
}

// TestWriteFailuresLogNothing: failed and refused writes are the delivery
// loop's to log, once; the sink only returns them.
func TestWriteFailuresLogNothing(t *testing.T) {
	srv := newServer(t, answer(http.StatusServiceUnavailable, ""), answer(http.StatusBadRequest, "bad line"), noContent())
	var logs bytes.Buffer
	s, err := New(Config{URL: srv.URL, Bucket: "b"}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	logs.Reset() // the start-up line
	unwritable := agent.Point{Measurement: "m", Time: time.Unix(1, 0)}
	for _, pts := range [][]agent.Point{testPoints(1), testPoints(1), {unwritable}, testPoints(1)} {
		_ = s.Write(context.Background(), pts)
	}
	if logs.Len() != 0 {
		t.Errorf("the sink logged:\n%s", logs.String())
	}
	if s.Endpoint() != srv.URL {
		t.Errorf("Endpoint() = %q, want %q", s.Endpoint(), srv.URL)
	}
}
