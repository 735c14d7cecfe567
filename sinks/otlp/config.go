package otlp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Defaults for the zero values of Config.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"

	TemporalityDelta      = "delta"
	TemporalityCumulative = "cumulative"

	DefaultGRPCEndpoint = "127.0.0.1:4317"
	DefaultHTTPEndpoint = "http://127.0.0.1:4318"
	DefaultTimeout      = 10 * time.Second

	// metricsPath is the OTLP/HTTP metrics path, appended to an HTTP
	// endpoint that does not end with it.
	metricsPath = "/v1/metrics"
)

// Config is the sink's configuration.
type Config struct {
	// Protocol is "grpc" (the default) or "http" (OTLP/HTTP with protobuf).
	Protocol string
	// Endpoint is, for grpc, host:port (default 127.0.0.1:4317); for http, a
	// base URL (default http://127.0.0.1:4318) to which /v1/metrics is
	// appended unless the path already ends with it. For http the URL's
	// scheme decides between TLS (https) and plaintext (http).
	Endpoint string
	// Insecure sends plaintext, without TLS. For grpc it must be set to talk
	// to a plaintext collector; for http it must agree with the scheme.
	Insecure bool
	// TLS sets the CA, a client certificate (mTLS), the server name and
	// skip-verify.
	TLS transport.TLSConfig
	// Headers go with every request (gRPC metadata or HTTP headers), e.g. an
	// authorization token. Their values are never logged nor put in errors.
	Headers map[string]string
	// Gzip compresses requests.
	Gzip bool
	// Timeout bounds one export (default 10s).
	Timeout time.Duration
	// Temporality of the accounting sums: "delta" (default) or
	// "cumulative" (running totals kept in StateDir).
	Temporality string
	// StateDir is where the cumulative totals persist; required for
	// cumulative temporality.
	StateDir string
	// Resource holds extra resource attributes.
	Resource map[string]string
	// Version is reported as service.version.
	Version string
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

// withDefaults fills zero values and reports every invalid setting at once.
// For http it also returns the full metrics URL.
func (c Config) withDefaults() (Config, string, error) {
	var errs []error
	if c.Protocol == "" {
		c.Protocol = ProtocolGRPC
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Temporality == "" {
		c.Temporality = TemporalityDelta
	}
	tlsSet := c.TLS != (transport.TLSConfig{})
	var metricsURL string
	switch c.Protocol {
	case ProtocolGRPC:
		if c.Endpoint == "" {
			c.Endpoint = DefaultGRPCEndpoint
		}
		if strings.Contains(c.Endpoint, "://") {
			errs = append(errs, fmt.Errorf("endpoint %q: for grpc give host:port, without a scheme (plaintext is insecure: true)", c.Endpoint))
		} else if _, port, err := net.SplitHostPort(c.Endpoint); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("endpoint %q: for grpc give host:port", c.Endpoint))
		}
		if c.Insecure && tlsSet {
			errs = append(errs, errors.New("insecure and tls settings exclude each other"))
		}
	case ProtocolHTTP:
		if c.Endpoint == "" {
			c.Endpoint = DefaultHTTPEndpoint
		}
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, errors.New("endpoint is not a valid URL"))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint %q: for http give an http:// or https:// URL", u.Redacted()))
		case u.User != nil:
			errs = append(errs, fmt.Errorf("endpoint %q: put credentials in headers, not in the URL", u.Redacted()))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("endpoint %q: a query or fragment is not sent; remove it", u.Redacted()))
		default:
			if c.Insecure && u.Scheme == "https" {
				errs = append(errs, fmt.Errorf("endpoint %q is https but insecure is set; use http:// for plaintext", c.Endpoint))
			}
			if tlsSet && u.Scheme == "http" {
				errs = append(errs, fmt.Errorf("endpoint %q is plaintext http but tls settings are given; use https://", c.Endpoint))
			}
			if !strings.HasSuffix(u.Path, metricsPath) {
				u.Path = strings.TrimSuffix(u.Path, "/") + metricsPath
			}
			metricsURL = u.String()
		}
	default:
		errs = append(errs, fmt.Errorf("protocol %q must be grpc or http", c.Protocol))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s must be positive", c.Timeout))
	}
	switch c.Temporality {
	case TemporalityDelta:
	case TemporalityCumulative:
		if c.StateDir == "" {
			errs = append(errs, errors.New("state_dir is required for cumulative temporality"))
		}
	default:
		errs = append(errs, fmt.Errorf("temporality %q must be delta or cumulative", c.Temporality))
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			errs = append(errs, fmt.Errorf("header name %q is not a valid header name", k))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			// Say which header, never the value.
			errs = append(errs, fmt.Errorf("header %q: value holds a line break or NUL", k))
		}
	}
	for k := range c.Resource {
		if k == "" {
			errs = append(errs, errors.New("resource: an attribute name is empty"))
		}
	}
	return c, metricsURL, errors.Join(errs...)
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
