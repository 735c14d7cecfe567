package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/pmta-agent/pmta-agent/agent"
)

// closeTimeout bounds the exporter's shutdown in Close.
const closeTimeout = 5 * time.Second

// Sink exports points as OTLP metrics. It is safe for concurrent use; writes
// are serialised.
type Sink struct {
	cfg       Config
	exp       exporter
	transport *http.Transport // http only, for closing idle connections
	endpoint  string          // for logs: host:port or the metrics URL
	scope     instrumentation.Scope
	secrets   agent.Redactor
	health    *health
	now       func() time.Time

	mu        sync.Mutex
	closed    bool
	state     *cumState // nil with delta temporality
	resources map[string]*resource.Resource

	dataPoints  atomic.Int64
	replays     atomic.Int64
	unsupported atomic.Int64
	stateErrors atomic.Int64
}

var (
	_ agent.Sink          = (*Sink)(nil)
	_ agent.Closer        = (*Sink)(nil)
	_ agent.StatsReporter = (*Sink)(nil)
)

// New checks cfg, loads the cumulative state when asked for, and builds the
// exporter. It does not contact the collector.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		return nil, errors.New("otlp sink: a logger is required")
	}
	cfg, metricsURL, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("otlp sink config: %w", err)
	}
	tlsConf, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("otlp sink tls: %w", err)
	}
	log = log.With("sink", "otlp")
	s := &Sink{
		cfg:       cfg,
		scope:     instrumentation.Scope{Name: scopeName, Version: cfg.Version},
		secrets:   newSecrets(cfg.Headers),
		health:    newHealth(log, time.Now),
		now:       time.Now,
		resources: make(map[string]*resource.Resource),
	}
	if cfg.Temporality == TemporalityCumulative {
		st, quarantined, err := loadState(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("otlp sink: %w", err)
		}
		if quarantined != "" {
			log.Warn("otlp cumulative state unreadable: moved aside, totals start again from zero",
				"moved_to", quarantined)
		}
		s.state = st
	}
	var useTLS bool
	switch cfg.Protocol {
	case ProtocolGRPC:
		s.endpoint, useTLS = cfg.Endpoint, !cfg.Insecure
		s.exp, err = newGRPCExporter(cfg, tlsConf)
	case ProtocolHTTP:
		s.endpoint, useTLS = metricsURL, strings.HasPrefix(metricsURL, "https:")
		s.exp, s.transport, err = newHTTPExporter(cfg, metricsURL, tlsConf)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp sink: %w", err)
	}
	headerNames := make([]string, 0, len(cfg.Headers))
	for k := range cfg.Headers {
		headerNames = append(headerNames, k)
	}
	log.Info("otlp sink configured", "protocol", cfg.Protocol, "endpoint", s.endpoint,
		"tls", useTLS,
		"gzip", cfg.Gzip, "timeout", cfg.Timeout, "temporality", cfg.Temporality,
		"headers", headerNames)
	return s, nil
}

// Name implements agent.Sink.
func (s *Sink) Name() string { return "otlp" }

// Write exports points and returns nil only when the collector took them
// all. Points of different servers go in separate exports (one resource
// each), in order; a failure stops at that export, and the returned
// *agent.SinkError then wraps a *PartialWriteError saying how many leading
// points are settled. An export the collector rejects for good does not stop
// the others, as with the influx sink.
func (s *Sink) Write(ctx context.Context, points []agent.Point) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &agent.SinkError{Kind: agent.Retryable, Err: errors.New("otlp export: the sink is closed")}
	}
	var (
		written, rejected int
		firstRejection    *agent.SinkError
		answered          bool
	)
	for _, r := range runsByServer(points) {
		se, sent := s.exportRun(ctx, r.server, points[r.lo:r.hi])
		switch {
		case se == nil:
			written += r.hi - r.lo
			answered = answered || sent
		case se.Kind == agent.Permanent:
			rejected += r.hi - r.lo
			answered = true
			if firstRejection == nil {
				firstRejection = se
			}
		default:
			s.saveState()
			s.health.failed(se, s.endpoint)
			return withProgress(se, written, rejected)
		}
	}
	s.saveState()
	if answered {
		s.health.succeeded()
	}
	switch {
	case firstRejection == nil:
		return nil
	case written == 0:
		return firstRejection
	default:
		return withProgress(firstRejection, written, rejected)
	}
}

// exportRun exports the points of one server. sent reports whether a
// request went out (false when nothing in the points was exportable).
func (s *Sink) exportRun(ctx context.Context, server string, pts []agent.Point) (se *agent.SinkError, sent bool) {
	var tx *cumTx
	if s.state != nil {
		tx = s.state.begin()
	}
	req := buildRequest(pts, tx)
	if req.dataPoints == 0 {
		s.settled(req)
		return nil, false
	}
	rm := req.resourceMetrics(s.resourceFor(server), s.scope)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	ctx, resp := withResponse(ctx)
	err := resp.wrap(s.exp.Export(ctx, &rm), s.now())
	se = s.secrets.RedactSinkError(classify(err))
	switch {
	case se == nil:
		if err != nil { // a partial success that rejected nothing: a warning
			s.health.notice("otlp collector accepted the data with a warning", "err", s.secrets.Scrub(err.Error()))
		}
		s.dataPoints.Add(int64(req.dataPoints))
	case se.Kind == agent.Permanent:
		s.health.notice("otlp collector rejected data for good", "data_points", req.dataPoints, "err", se.Err.Error())
	default:
		return se, true // the state stays as it was: the retry adds the same intervals
	}
	// Settled: the totals include the intervals even when the collector
	// rejected them, so that the next accepted point still counts them.
	if tx != nil {
		tx.commit()
	}
	s.settled(req)
	return se, true
}

// settled counts what a settled request skipped.
func (s *Sink) settled(req *request) {
	s.replays.Add(int64(req.replays))
	s.unsupported.Add(int64(req.unsupported))
	if req.replays > 0 {
		s.health.notice("otlp cumulative mode skipped replayed accounting intervals (already in the totals)",
			"data_points", req.replays)
	}
}

// resourceFor returns (and keeps) the resource of one server.
func (s *Sink) resourceFor(server string) *resource.Resource {
	if r, ok := s.resources[server]; ok {
		return r
	}
	r := newResource(server, s.cfg.Version, s.cfg.Resource)
	s.resources[server] = r
	return r
}

// saveState persists the cumulative totals if they changed. A failure is
// logged and counted but does not fail the write: the data was delivered
// and the totals in memory are right; the next write tries to save again.
func (s *Sink) saveState() {
	if s.state == nil {
		return
	}
	s.state.expire()
	if err := s.state.save(); err != nil {
		s.stateErrors.Add(1)
		s.health.notice("otlp cumulative state not saved", "err", err.Error())
	}
}

// Close saves the cumulative state and shuts the exporter down. The sink
// must not be used afterwards; a second Close does nothing.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.state != nil {
		s.state.expire()
		if err := s.state.save(); err != nil {
			errs = append(errs, fmt.Errorf("otlp sink: %w", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := s.exp.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("otlp sink: shut down exporter: %w", err))
	}
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// Component implements agent.StatsReporter.
func (s *Sink) Component() string { return "otlp_export" }

// Stats implements agent.StatsReporter: data points exported, accounting
// intervals skipped as replays in cumulative mode, fields that were not
// numbers, and failed saves of the cumulative state.
func (s *Sink) Stats() []agent.Field {
	return []agent.Field{
		{Key: "data_points", Value: s.dataPoints.Load()},
		{Key: "replays_skipped", Value: s.replays.Load()},
		{Key: "fields_unsupported", Value: s.unsupported.Load()},
		{Key: "state_errors", Value: s.stateErrors.Load()},
	}
}
