// Package influx is the sink that writes points to InfluxDB through the
// /api/v2/write endpoint, which InfluxDB 1.8+, 2.x, 3.x and Cloud all serve.
// It uses influxdb-client-go's blocking write API and never retries on its
// own: the delivery loop owns retries, back-off, the durable queue and the
// log of failed and refused writes, so this package only sends, and
// classifies what went wrong (see classify). Its settings, their defaults
// and their checks are Config, DefaultConfig and Config.Validate; the
// config package composes them.
//
// InfluxDB 1.8: set Bucket to "database/retention-policy" (or just
// "database" for the default policy), leave Org empty, and set Token to
// "user:password" when authentication is on, or leave it empty.
package influx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/pmta-agent/pmta-agent/agent/redact"
	"github.com/pmta-agent/pmta-agent/agent/transport"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Sink writes points to InfluxDB. It is safe for concurrent use.
type Sink struct {
	cfg       Config
	client    influxdb2.Client
	write     api.WriteAPIBlocking
	transport *http.Transport
	safeURL   string // URL without its password, for logs and errors
	secrets   redact.Redactor
}

var (
	_ agent.Sink       = (*Sink)(nil)
	_ agent.Closer     = (*Sink)(nil)
	_ agent.Endpointer = (*Sink)(nil)
)

// New checks cfg and builds the client. It does not contact the server; call
// Ping for that. Zero BatchSize, Timeout and Precision take DefaultConfig's
// values. New refuses what Validate refuses, except credentials in the URL
// and a token in clear text to another host (see Config.Validate).
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		return nil, errors.New("influx sink: a logger is required")
	}
	cfg = cfg.withDefaults()
	if err := errors.Join(append(cfg.check(), cfg.checkWiring()...)...); err != nil {
		return nil, fmt.Errorf("influx sink config: %w", err)
	}
	tlsConf, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("influx sink tls: %w", err)
	}
	u, _ := url.Parse(cfg.URL) // checked above

	// Our own client rather than Options.SetHTTPRequestTimeout, which only
	// takes whole seconds; with SetHTTPClient the library ignores its other
	// HTTP options, so TLS goes on this transport too.
	tr := transport.NewHTTP(tlsConf)
	httpClient := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: errorBodyTransport{base: tr},
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
		transport: tr,
		safeURL:   u.Redacted(),
		secrets:   newSecrets(cfg.Token, u),
	}
	log.Info("influx sink configured", "sink", "influx", "url", s.safeURL, "org", cfg.Org,
		"bucket", cfg.Bucket, "gzip", cfg.Gzip, "batch_size", cfg.BatchSize,
		"timeout", cfg.Timeout, "auth", cfg.Token != "")
	return s, nil
}

// Name implements agent.Sink.
func (s *Sink) Name() string { return "influx" }

// Endpoint implements agent.Endpointer: the URL without its password, for
// the delivery loop's log lines.
func (s *Sink) Endpoint() string { return s.safeURL }

// Write sends the points in one request, in order, and returns nil only
// when InfluxDB accepted them. How many points one Write gets is the
// delivery loop's to decide (BatchSize); the sink does not split them again.
//
// A refusal for good is returned as it is, with Rejected when InfluxDB said
// how many lines it refused: InfluxDB 1.8's partial write stores all but the
// bad lines, and only the delivery loop, by writing halves again (which
// InfluxDB overwrites harmlessly, as every point has a deterministic time and
// tag set), can find which lines to dead-letter.
//
// A point that line protocol cannot carry (no measurement, no writable
// field, a time outside the nanosecond range) is never sent nor counted as
// written: the points before it go out, and Write returns a Permanent error
// with Rejected = 1 for the points from it on, wrapped in an
// *agent.PartialWriteError (agent.WithProgress) that says how many went out,
// so that the delivery loop isolates and dead-letters it.
func (s *Sink) Write(ctx context.Context, points []agent.Point) error {
	var buf []byte
	unwritable := -1
	for i := range points {
		n := len(buf)
		buf = agent.AppendLineProtocolPrecision(buf, &points[i], s.cfg.Precision)
		if len(buf) == n {
			unwritable = i
			break
		}
	}
	written := len(points)
	if unwritable >= 0 {
		written = unwritable
	}
	if written > 0 {
		if se := s.send(ctx, buf); se != nil {
			if se.Kind == agent.Permanent {
				se.Rejected = min(se.Rejected, written)
			}
			return se
		}
	}
	if unwritable >= 0 {
		se := &agent.SinkError{Kind: agent.Permanent, Rejected: 1, Err: fmt.Errorf(
			"influx write: point cannot be written as line protocol: %s", agent.EncodeProblem(&points[unwritable]))}
		return agent.WithProgress(se, written)
	}
	return nil
}

// send writes line protocol and classifies the outcome: nil
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
