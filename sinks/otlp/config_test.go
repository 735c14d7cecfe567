package otlp

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

func TestDefaultConfig(t *testing.T) {
	want := Config{Protocol: ProtocolGRPC, Endpoint: DefaultGRPCEndpoint, Gzip: true, Timeout: 10 * time.Second,
		BatchSize: agent.DefaultBatchSize, Temporality: TemporalityDelta}
	if got := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultConfig() = %+v, want %+v", got, want)
	}
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Errorf("the defaults do not validate: %v", errs)
	}
}

// TestValidate: every problem, each starting with its key in the section.
func TestValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.pem")
	http := func(endpoint string) func(*Config) {
		return func(c *Config) { c.Protocol, c.Endpoint = ProtocolHTTP, endpoint }
	}
	cases := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"protocol", func(c *Config) { c.Protocol = "udp" }, []string{`protocol: is "udp", want one of grpc, http`}},
		{"grpc without endpoint", func(c *Config) { c.Endpoint = "" }, []string{"endpoint: must be set"}},
		{"grpc with a scheme", func(c *Config) { c.Endpoint = "http://c:4317" }, []string{`endpoint: "http://c:4317" is not host:port`}},
		{"grpc without a port", func(c *Config) { c.Endpoint = "c" }, []string{`endpoint: "c" is not host:port`}},
		{"grpc insecure with tls", func(c *Config) { c.Insecure, c.TLS.ServerName = true, "c" },
			[]string{"insecure: is set together with tls settings"}},
		{"http without endpoint", http(""), []string{"endpoint: must be set"}},
		{"http host:port", http("127.0.0.1:4318"), []string{"endpoint: is not a valid URL"}},
		{"http credentials", http("https://u:pw-secret@c"), []string{"endpoint: must not carry credentials"}},
		{"http query", http("https://c/?k=v"), []string{`endpoint: "https://c/?k=v" has a query or fragment`}},
		{"http insecure https", func(c *Config) { http("https://c")(c); c.Insecure = true },
			[]string{"insecure: is set with an https:// endpoint; use http:// for plaintext"}},
		{"http tls on plaintext", func(c *Config) { http("http://c")(c); c.TLS.ServerName = "c" },
			[]string{`endpoint: "http://c" is plaintext http but tls settings are given`}},
		{"timeout", func(c *Config) { c.Timeout = 0 }, []string{"timeout: must be a positive duration such as 10s (is 0s)"}},
		{"batch size", func(c *Config) { c.BatchSize = 0 }, []string{"batch_size: must be at least 1"}},
		{"temporality", func(c *Config) { c.Temporality = "weekly" }, []string{`temporality: is "weekly", want one of delta, cumulative`}},
		{"header name", func(c *Config) { c.Headers = map[string]string{"bad name": "v"} }, []string{`headers: header name "bad name"`}},
		{"header value", func(c *Config) { c.Headers = map[string]string{"X-Ok": "pw-secret\n"} }, []string{"headers.X-Ok: the value holds"}},
		{"resource", func(c *Config) { c.Resource = map[string]string{"": "v"} }, []string{"resource: an attribute name is empty"}},
		{"tls", func(c *Config) { c.TLS = transport.TLSConfig{KeyFile: missing} },
			[]string{"tls.key_file: cannot be read: ", "tls: cert_file and key_file go together"}},
		{"headers in clear text over http", func(c *Config) {
			http("http://collector.example:4318")(c)
			c.Headers = map[string]string{"Authorization": "Bearer pw-secret"}
		}, []string{"headers: would be sent in clear text to a remote host; use TLS"}},
		{"headers in clear text over grpc", func(c *Config) {
			c.Endpoint, c.Insecure = "collector.example:4317", true
			c.Headers = map[string]string{"Authorization": "Bearer pw-secret"}
		}, []string{"headers: would be sent in clear text to a remote host; use TLS"}},
		{"cumulative needs no state dir here", func(c *Config) { c.Temporality = TemporalityCumulative }, nil},
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
				if strings.Contains(err.Error(), "pw-secret") {
					t.Errorf("problem %q shows a secret", err)
				}
			}
		})
	}
	for _, c := range []Config{
		{Protocol: ProtocolHTTP, Endpoint: "http://localhost:4318"},
		{Protocol: ProtocolHTTP, Endpoint: "https://collector.example"},
		{Protocol: ProtocolGRPC, Endpoint: "127.0.0.1:4317", Insecure: true},
		{Protocol: ProtocolGRPC, Endpoint: "collector.example:4317"},
	} {
		cfg := DefaultConfig()
		cfg.Protocol, cfg.Endpoint, cfg.Insecure = c.Protocol, c.Endpoint, c.Insecure
		cfg.Headers = map[string]string{"Authorization": "Bearer t"}
		if errs := cfg.Validate(); len(errs) != 0 {
			t.Errorf("headers to %s (%s, insecure %v): %v", c.Endpoint, c.Protocol, c.Insecure, errs)
		}
	}
}

// TestNewLeavesClearTextToValidate: a program may send headers in clear
// text; only a configuration file may not.
func TestNewLeavesClearTextToValidate(t *testing.T) {
	cfg := Config{Protocol: ProtocolHTTP, Endpoint: "http://collector.example:4318",
		Headers: map[string]string{"Authorization": "Bearer t"}}
	if len(cfg.Validate()) == 0 {
		t.Error("Validate accepted headers in clear text to a remote host")
	}
	s := newSink(t, cfg)
	if want := "http://collector.example:4318/v1/metrics"; s.Endpoint() != want {
		t.Errorf("Endpoint() = %q, want %q", s.Endpoint(), want)
	}
	if g := newSink(t, Config{Endpoint: "c:4317", Insecure: true}); g.Endpoint() != "c:4317" {
		t.Errorf("grpc Endpoint() = %q", g.Endpoint())
	}
}

// TestWriteFailuresLogNothing: failed and refused writes are the delivery
// loop's to log, once; the sink only returns them.
func TestWriteFailuresLogNothing(t *testing.T) {
	logs := &syncLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sink := func(h http.HandlerFunc) *Sink {
		s, err := New(Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	failing := sink(httpStatus(http.StatusServiceUnavailable, "down"))
	refusing := sink(httpStatus(http.StatusBadRequest, "bad"))
	before := logs.String() // the start-up lines
	for _, w := range []struct {
		s   *Sink
		pts []agent.Point
	}{
		{failing, familyPoints()},
		{refusing, familyPoints()},
		{refusing, []agent.Point{agent.NewPoint("pmta_status", nil, fields("up", int64(1)), time.Time{})}},
	} {
		if err := w.s.Write(context.Background(), w.pts); err == nil {
			t.Fatal("Write succeeded")
		}
	}
	if after := logs.String(); after != before {
		t.Errorf("the sink logged:\n%s", strings.TrimPrefix(after, before))
	}
}

// TestNotices: each kind of notice is logged at most once per noticeEvery,
// with the number held back, independently of the other kinds.
func TestNotices(t *testing.T) {
	logs := &syncLog{}
	n := newNotices(slog.New(slog.NewTextHandler(logs, nil)))
	now := t0
	lines := func() int { return strings.Count(logs.String(), "\n") }
	for range 10 {
		n.warn(&n.rejected, now, "rejected", "n", 1)
		now = now.Add(time.Second)
	}
	n.warn(&n.replays, now, "replays")
	if got := lines(); got != 2 {
		t.Fatalf("%d lines for 10 rejections and a replay within a minute, want 2:\n%s", got, logs)
	}
	now = t0.Add(noticeEvery)
	n.warn(&n.rejected, now, "rejected", "n", 1)
	if got := lines(); got != 3 || !strings.Contains(logs.String(), "held_back=9") {
		t.Errorf("after the interval: %d lines, want 3 with held_back=9:\n%s", got, logs)
	}
}
