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

	"github.com/pmta-agent/pmta-agent/agent/redact"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
	secrets   redact.Redactor
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
	rejectedDPs atomic.Int64 // data points the collector rejected in a partial success
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
		scope:     instrumentation.Scope{Name: scopeName, Version: agent.SafeTag(cfg.Version)},
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
// each), in order. Write stops at the first export that fails, whatever the
// kind, and never counts a point the collector did not take: the returned
// *agent.SinkError then wraps an *agent.PartialWriteError
// (agent.WithProgress) saying how many leading points the exports before it
// delivered. On a Permanent error the delivery loop writes the rest again in
// halves to find the points refused, and dead-letters them.
//
// A point that cannot be exported (see exportProblem: a time OTLP cannot
// carry, no numeric field) is never sent nor counted as written: the points
// before it go out, and Write returns a Permanent error with Rejected = 1
// for the points from it on.
//
// An export the collector took with a partial success counts as written
// (see classify); its rejected data points are counted in the
// rejected_data_points stat.
func (s *Sink) Write(ctx context.Context, points []agent.Point) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &agent.SinkError{Kind: agent.Retryable, Err: errors.New("otlp export: the sink is closed")}
	}
	var (
		written  int
		answered bool // the collector took an export
		se       *agent.SinkError
	)
	for _, r := range runsByServer(points) {
		pts := points[r.lo:r.hi]
		bad, problem := -1, ""
		for i := range pts {
			if problem = exportProblem(&pts[i]); problem != "" {
				bad, pts = i, pts[:i]
				break
			}
		}
		if len(pts) > 0 {
			var sent bool
			if se, sent = s.exportRun(ctx, r.server, pts); se != nil {
				break
			}
			written += len(pts)
			answered = answered || sent
		}
		if bad >= 0 {
			se = &agent.SinkError{Kind: agent.Permanent, Rejected: 1,
				Err: fmt.Errorf("otlp export: point cannot be exported: %s", problem)}
			s.health.notice("otlp sink refused a point it cannot export", "err", se.Err.Error())
			break
		}
	}
	s.saveState()
	if answered {
		s.health.succeeded()
	}
	if se == nil {
		return nil
	}
	if se.Kind != agent.Permanent {
		s.health.failed(se, s.endpoint)
	}
	return agent.WithProgress(se, written)
}

// exportRun exports the points of one server. sent reports whether a
// request went out (false when every data point was a replay skipped in
// cumulative mode). The cumulative totals are committed only when the
// collector took the export: after any failure the delivery loop sends the
// same points again (a refused batch in halves), and they must add up then.
func (s *Sink) exportRun(ctx context.Context, server string, pts []agent.Point) (se *agent.SinkError, sent bool) {
	var tx *cumTx
	if s.state != nil {
		tx = s.state.begin()
	}
	req := buildRequest(pts, tx)
	if req.dataPoints == 0 {
		s.countSkipped(req)
		return nil, false
	}
	rm := req.resourceMetrics(s.resourceFor(server), s.scope)
	err := s.export(ctx, &rm)
	if se = s.redact(classify(err)); se != nil {
		if se.Kind == agent.Permanent {
			s.health.notice("otlp collector refused data for good", "data_points", req.dataPoints, "err", se.Err.Error())
		}
		return se, true
	}
	s.dataPoints.Add(int64(req.dataPoints))
	if rejected, msg, ok := partialSuccess(err); ok {
		msg = s.secrets.Scrub(msg)
		if rejected > 0 {
			total := s.rejectedDPs.Add(rejected)
			s.health.notice("otlp collector rejected data points of an accepted export; they are not sent again",
				"rejected_data_points", rejected, "rejected_total", total, "message", msg)
		} else {
			s.health.notice("otlp collector accepted the data with a warning", "message", msg)
		}
	}
	if tx != nil {
		tx.commit()
	}
	s.countSkipped(req)
	return nil, true
}

// export sends one request and returns the exporter's outcome with what the
// hooks recorded (see response.wrap), for classify.
func (s *Sink) export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	ctx, resp := withResponse(ctx)
	return resp.wrap(s.exp.Export(ctx, rm), s.now())
}

// redact removes header values from a classified error's text.
func (s *Sink) redact(se *agent.SinkError) *agent.SinkError {
	if se == nil {
		return nil
	}
	return s.secrets.RedactSinkError(se)
}

// countSkipped counts what a request left out: accounting intervals skipped
// as replays, and fields that are not numbers.
func (s *Sink) countSkipped(req *request) {
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

// Stats implements agent.StatsReporter: data points in exports the
// collector took, accounting intervals skipped as replays in cumulative
// mode, fields that were not finite numbers, failed saves of the cumulative
// state, and data points the collector rejected in a partial success (they
// are part of data_points, and are not sent again).
func (s *Sink) Stats() []agent.Field {
	return []agent.Field{
		{Key: "data_points", Value: s.dataPoints.Load()},
		{Key: "replays_skipped", Value: s.replays.Load()},
		{Key: "fields_unsupported", Value: s.unsupported.Load()},
		{Key: "state_errors", Value: s.stateErrors.Load()},
		{Key: "rejected_data_points", Value: s.rejectedDPs.Load()},
	}
}
