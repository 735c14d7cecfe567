package otlp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/zerofill"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// The values of Config.Protocol and Config.Temporality, and the default
// endpoint of each protocol.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"

	TemporalityDelta      = "delta"
	TemporalityCumulative = "cumulative"

	DefaultGRPCEndpoint = "127.0.0.1:4317"
	DefaultHTTPEndpoint = "http://127.0.0.1:4318"

	// metricsPath is the OTLP/HTTP metrics path, appended to an HTTP
	// endpoint that does not end with it.
	metricsPath = "/v1/metrics"
)

// Config is the sink's configuration: the sinks.otlp section of the
// configuration file (its koanf tags are the YAML keys), apart from the
// buffer subsection, which the config package puts next to it. Its
// defaults are DefaultConfig and its checks Validate.
type Config struct {
	// Enabled turns the sink on; New does not read it.
	Enabled bool `koanf:"enabled"`
	// Protocol is "grpc" or "http" (OTLP/HTTP with protobuf).
	Protocol string `koanf:"protocol"`
	// Endpoint is, for grpc, host:port; for http, a base URL to which
	// /v1/metrics is appended unless the path already ends with it. For
	// http the URL's scheme decides between TLS (https) and plaintext
	// (http).
	Endpoint string `koanf:"endpoint"`
	// Insecure sends plaintext, without TLS. For grpc it must be set to talk
	// to a plaintext collector; for http it must agree with the scheme.
	Insecure bool `koanf:"insecure"`
	// TLS sets the CA, a client certificate (mTLS), the server name and
	// skip-verify.
	TLS transport.TLSConfig `koanf:"tls"`
	// Headers go with every request (gRPC metadata or HTTP headers), e.g. an
	// authorization token. Their values are never logged nor put in errors.
	Headers map[string]string `koanf:"headers"`
	// HeadersFile names a file of more headers, one "Name: value" a line.
	// The config loader reads it into Headers; the sink does not read it.
	HeadersFile string `koanf:"headers_file"`
	// Gzip compresses requests.
	Gzip bool `koanf:"gzip"`
	// Timeout bounds one export.
	Timeout time.Duration `koanf:"timeout"`
	// BatchSize is the most points the delivery loop hands one Write. The
	// sink itself exports whatever one Write gets.
	BatchSize int `koanf:"batch_size"`
	// Temporality of the accounting sums: "delta" or "cumulative" (running
	// totals kept in StateDir).
	Temporality string `koanf:"temporality"`
	// Resource holds extra resource attributes.
	Resource map[string]string `koanf:"resource"`
	// StateDir is where the cumulative totals persist; required for
	// cumulative temporality. The wiring sets it (under the agent's
	// state_dir); the configuration file has no key for it.
	StateDir string `koanf:"-"`
	// Version is reported as service.version. The wiring sets it.
	Version string `koanf:"-"`
}

// DefaultConfig returns the sink's defaults: the configuration file's
// values where it says nothing, and what New puts in the zero fields it
// fills (for http, an empty Endpoint is DefaultHTTPEndpoint instead).
func DefaultConfig() Config {
	return Config{
		Protocol:    ProtocolGRPC,
		Endpoint:    DefaultGRPCEndpoint,
		Gzip:        true,
		Timeout:     10 * time.Second,
		BatchSize:   agent.DefaultBatchSize,
		Temporality: TemporalityDelta,
	}
}

// String shows the configuration with header values masked, so that printing
// a Config cannot leak a token.
func (c Config) String() string {
	if len(c.Headers) > 0 {
		masked := make(map[string]string, len(c.Headers))
		for k := range c.Headers {
			masked[k] = "[redacted]"
		}
		c.Headers = masked
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue is String for log/slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every problem of the settings an operator writes, each
// error starting with its key relative to the section ("endpoint: must be
// set"). It checks them whether or not Enabled is set. Besides what New
// refuses (see check), it refuses headers that would cross the network to
// another host in clear text. The state directory of cumulative
// temporality is not a key of the section: the config package checks the
// agent's state_dir, and New checks StateDir.
func (c Config) Validate() []error {
	errs := c.check()
	if len(c.Headers) > 0 {
		remotePlain := false
		switch c.Protocol {
		case ProtocolHTTP:
			remotePlain = transport.CleartextRemote(c.Endpoint)
		case ProtocolGRPC:
			host, _, _ := net.SplitHostPort(c.Endpoint)
			remotePlain = c.Insecure && !transport.LoopbackHost(host)
		}
		if remotePlain {
			errs = append(errs, errors.New("headers: would be sent in clear text to a remote host; use TLS"))
		}
	}
	return errs
}

// check reports the problems New refuses: settings the sink cannot work
// with. Headers in clear text are left to Validate: a program that builds
// a Config may send them so, and the sink keeps their values out of its
// errors and logs.
func (c Config) check() []error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, a...))
	}
	tlsSet := c.TLS != (transport.TLSConfig{})
	switch c.Protocol {
	case ProtocolGRPC:
		switch _, port, err := net.SplitHostPort(c.Endpoint); {
		case c.Endpoint == "":
			add("endpoint", "must be set")
		case strings.Contains(c.Endpoint, "://"):
			// SplitHostPort takes "http://c:4317" for host "http://c".
			add("endpoint", "%q is not host:port (the grpc protocol takes no URL: give it without a scheme, "+
				"and insecure: true for plaintext)", c.Endpoint)
		case err != nil || port == "":
			add("endpoint", "%q is not host:port (the grpc protocol takes no URL)", c.Endpoint)
		}
		if c.Insecure && tlsSet {
			add("insecure", "is set together with tls settings; they exclude each other")
		}
	case ProtocolHTTP:
		if err := transport.CheckURL(c.Endpoint); err != nil {
			add("endpoint", "%w", err)
			break
		}
		u, _ := url.Parse(c.Endpoint) // checked above
		if u.RawQuery != "" || u.Fragment != "" {
			add("endpoint", "%q has a query or fragment, which is not sent; remove it", u.Redacted())
		}
		if c.Insecure && u.Scheme == "https" {
			add("insecure", "is set with an https:// endpoint; use http:// for plaintext")
		}
		if tlsSet && u.Scheme == "http" {
			add("endpoint", "%q is plaintext http but tls settings are given; use https://", c.Endpoint)
		}
	default:
		add("protocol", "is %q, want one of grpc, http", c.Protocol)
		if c.Endpoint == "" {
			add("endpoint", "must be set")
		}
	}
	if c.Timeout <= 0 {
		add("timeout", "must be a positive duration such as 10s (is %s)", c.Timeout)
	}
	if c.BatchSize < 1 {
		add("batch_size", "must be at least 1")
	}
	if c.Temporality != TemporalityDelta && c.Temporality != TemporalityCumulative {
		add("temporality", "is %q, want one of delta, cumulative", c.Temporality)
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			add("headers", "header name %q is not a valid header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			// Say which header, never the value.
			add("headers."+k, "the value holds a line break or NUL")
		}
	}
	for k := range c.Resource {
		if k == "" {
			add("resource", "an attribute name is empty")
		}
	}
	return append(errs, c.TLS.Validate("tls")...)
}

// checkWiring reports problems of the fields that have no key in the
// configuration file, which only a program building the sink sets.
func (c Config) checkWiring() []error {
	if c.Temporality == TemporalityCumulative && c.StateDir == "" {
		return []error{errors.New("state_dir is required for cumulative temporality")}
	}
	return nil
}

// withDefaults fills, from DefaultConfig, the zero fields that a program
// building the sink may leave out; an empty Endpoint becomes the default
// endpoint of the protocol.
func (c Config) withDefaults() Config {
	if c.Endpoint == "" && c.Protocol == ProtocolHTTP {
		c.Endpoint = DefaultHTTPEndpoint
	}
	zerofill.From(&c, DefaultConfig(), "Protocol", "Endpoint", "Timeout", "BatchSize", "Temporality")
	return c
}

// metricsURL returns the full OTLP/HTTP metrics URL of an endpoint that
// check accepted.
func metricsURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	if !strings.HasSuffix(u.Path, metricsPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + metricsPath
	}
	return u.String()
}

// validHeaderName accepts HTTP token characters; gRPC metadata keys are the
// lower-cased form, which the gRPC exporter applies.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
