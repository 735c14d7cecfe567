// Package influx is the sink that writes points to InfluxDB through the
// /api/v2/write endpoint, which InfluxDB 1.8+, 2.x, 3.x and Cloud all serve.
// It uses influxdb-client-go's blocking write API and never retries on its
// own: the delivery loop owns retries, back-off and the durable queue, so this
// package only sends, and classifies what went wrong (see classify).
//
// InfluxDB 1.8: set Bucket to "database/retention-policy" (or just
// "database" for the default policy), leave Org empty, and set Token to
// "user:password" when authentication is on, or leave it empty.
package influx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/redact"
	"github.com/pmta-agent/pmta-agent/agent/transport"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Defaults for the zero values of Config.
const (
	DefaultBatchSize = 5000
	DefaultTimeout   = 10 * time.Second
)

// Config is the sink's configuration.
type Config struct {
	// URL is the server's base URL, e.g. https://influx.example:8086.
	URL string
	// Org is the 2.x/3.x organisation; InfluxDB 1.8 ignores it.
	Org string
	// Bucket is the 2.x/3.x bucket, or for 1.8 "db/rp" or "db".
	Bucket string
	// Token is the 2.x/3.x API token, or for 1.8 "user:password". It is sent
	// only in the Authorization header: never logged, never in an error.
	Token string
	// Gzip compresses request bodies.
	Gzip bool
	// BatchSize is the most points sent in one request (default 5000).
	BatchSize int
	// Timeout bounds one HTTP request, from dial to the end of the response
	// (default 10s).
	Timeout time.Duration
	// TLS configures certificate checks and client certificates for https.
	TLS transport.TLSConfig
	// Precision is the timestamp unit on the wire: time.Nanosecond (the
	// default), time.Microsecond, time.Millisecond or time.Second.
	Precision time.Duration
}

// String shows the configuration with the token masked, so that printing a
// Config cannot leak it.
func (c Config) String() string {
	c.Token = maskToken(c.Token)
	if u, err := url.Parse(c.URL); err == nil {
		c.URL = u.Redacted()
	} else {
		c.URL = "(invalid)"
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue is String for log/slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func maskToken(token string) string {
	if token == "" {
		return ""
	}
	return "[redacted]"
}

// withDefaults fills zero values and reports every invalid setting at once.
func (c Config) withDefaults() (Config, error) {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Precision == 0 {
		c.Precision = time.Nanosecond
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url is required"))
	} else if u, err := url.Parse(c.URL); err != nil {
		// url.Parse's error quotes the URL, which may hold a password.
		errs = append(errs, errors.New("url is not a valid URL"))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q must be http:// or https:// with a host", u.Redacted()))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket is required (for InfluxDB 1.8: \"database/retention-policy\")"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch_size %d must be positive", c.BatchSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s must be positive", c.Timeout))
	}
	switch c.Precision {
	case time.Nanosecond, time.Microsecond, time.Millisecond, time.Second:
	default:
		errs = append(errs, fmt.Errorf("precision %s must be 1ns, 1µs, 1ms or 1s", c.Precision))
	}
	return c, errors.Join(errs...)
}

// Sink writes points to InfluxDB. It is safe for concurrent use.
type Sink struct {
	cfg       Config
	client    influxdb2.Client
	write     api.WriteAPIBlocking
	transport *http.Transport
	safeURL   string // URL without its password, for logs and errors
	secrets   redact.Redactor
	health    *health
}

var (
	_ agent.Sink   = (*Sink)(nil)
	_ agent.Closer = (*Sink)(nil)
)

// New checks cfg and builds the client. It does not contact the server; call
// Ping for that.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		return nil, errors.New("influx sink: a logger is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("influx sink config: %w", err)
	}
	tlsConf, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("influx sink tls: %w", err)
	}
	u, _ := url.Parse(cfg.URL) // checked in withDefaults

	// Our own client rather than Options.SetHTTPRequestTimeout, which only
	// takes whole seconds; with SetHTTPClient the library ignores its other
	// HTTP options, so TLS goes on this transport too.
	transport := newTransport(tlsConf)
	httpClient := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: errorBodyTransport{base: transport},
	}
	opts := influxdb2.DefaultOptions().
		SetHTTPClient(httpClient).
		SetUseGZip(cfg.Gzip).
		SetPrecision(cfg.Precision).
		SetApplicationName("pmta-agent").
		// The blocking API used here never retries (it calls the write
		// service's WriteBatch directly); zero retries also keeps the
		// library's retry machinery off should anything reach it.
		SetMaxRetries(0)
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)

	s := &Sink{
		cfg:       cfg,
		client:    client,
		write:     client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		transport: transport,
		safeURL:   u.Redacted(),
		secrets:   newSecrets(cfg.Token, u),
		health:    newHealth(log.With("sink", "influx"), time.Now),
	}
	log.Info("influx sink configured", "sink", "influx", "url", s.safeURL, "org", cfg.Org,
		"bucket", cfg.Bucket, "gzip", cfg.Gzip, "batch_size", cfg.BatchSize,
		"timeout", cfg.Timeout, "auth", cfg.Token != "")
	return s, nil
}

// newTransport returns a copy of Go's default transport (proxy from the
// environment, dial and TLS handshake timeouts, connection reuse) with tlsConf.
func newTransport(tlsConf *tls.Config) *http.Transport {
	var t *http.Transport
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		t = def.Clone()
	} else { // replaced by some other package: build the same defaults
		t = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	t.TLSClientConfig = tlsConf
	return t
}

// Name implements agent.Sink.
func (s *Sink) Name() string { return "influx" }

// Write sends points in chunks of at most BatchSize, in order, one request
// per chunk, and returns nil only when InfluxDB accepted every chunk.
//
// It stops at the first chunk that fails, whatever the kind, and never
// counts a point the server did not accept: the returned *agent.SinkError
// wraps an *agent.PartialWriteError (agent.WithProgress) saying how many
// leading points the chunks before it delivered. That holds for a chunk
// refused for good too: InfluxDB 1.8's partial write stores all but the bad
// lines of it, and only the delivery loop, by writing halves again (which
// InfluxDB overwrites harmlessly, as every point has a deterministic time and
// tag set), can find which lines to dead-letter; Rejected says how many
// there are when the server said so.
//
// A point that line protocol cannot carry (no measurement, no writable
// field, a time outside the nanosecond range) is never sent nor counted as
// written: the points before it go out, and Write returns a Permanent error
// with Rejected = 1 for the points from it on, so that the delivery loop
// isolates and dead-letters it.
func (s *Sink) Write(ctx context.Context, points []agent.Point) error {
	var (
		buf      []byte
		written  int
		answered bool // the server took part: it accepted a chunk or judged one
	)
	for written < len(points) {
		end := min(written+s.cfg.BatchSize, len(points))
		unwritable := -1
		buf = buf[:0]
		for i := written; i < end; i++ {
			n := len(buf)
			buf = agent.AppendLineProtocolPrecision(buf, &points[i], s.cfg.Precision)
			if len(buf) == n {
				unwritable, end = i, i
				break
			}
		}
		if end > written {
			if se := s.send(ctx, buf); se != nil {
				if se.Kind == agent.Permanent {
					// The server answered: whatever failed before is over.
					s.health.succeeded()
					se.Rejected = min(se.Rejected, end-written)
					s.health.rejected(se)
				} else {
					s.health.failed(se)
				}
				return agent.WithProgress(se, written)
			}
			written, answered = end, true
		}
		if unwritable >= 0 {
			if answered {
				s.health.succeeded()
			}
			se := &agent.SinkError{Kind: agent.Permanent, Rejected: 1, Err: fmt.Errorf(
				"influx write: point cannot be written as line protocol: %s", agent.EncodeProblem(&points[unwritable]))}
			s.health.rejected(se)
			return agent.WithProgress(se, written)
		}
	}
	if answered {
		s.health.succeeded()
	}
	return nil
}

// send writes one chunk of line protocol and classifies the outcome: nil
// when InfluxDB accepted it.
func (s *Sink) send(ctx context.Context, lines []byte) *agent.SinkError {
	err := s.write.WriteRecord(ctx, string(lines))
	se := classify(err)
	if se == nil {
		return nil
	}
	return s.secrets.RedactSinkError(se)
}

// Ping checks that the server answers on /ping. It neither needs nor checks
// the token; a bad token or a missing bucket shows on the first Write.
func (s *Sink) Ping(ctx context.Context) error {
	if _, err := s.client.Ping(ctx); err != nil {
		return s.secrets.RedactError(fmt.Errorf("ping influx at %s: %w", s.safeURL, err))
	}
	return nil
}

// Close releases idle connections. The sink must not be used afterwards.
func (s *Sink) Close() error {
	s.client.Close()
	s.transport.CloseIdleConnections()
	return nil
}
