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
	notices   *notices
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
	_ agent.Endpointer    = (*Sink)(nil)
)

// New checks cfg, loads the cumulative state when asked for, and builds the
// exporter. It does not contact the collector. A zero Protocol, Timeout,
// BatchSize or Temporality takes DefaultConfig's value, and an empty
// Endpoint the protocol's default. New refuses what Validate refuses,
// except headers in clear text to another host (see Config.Validate), and
// it refuses cumulative temporality without StateDir.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		return nil, errors.New("otlp sink: a logger is required")
	}
	cfg = cfg.withDefaults()
	if err := errors.Join(append(cfg.check(), cfg.checkWiring()...)...); err != nil {
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
		notices:   newNotices(log),
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
		u := metricsURL(cfg.Endpoint)
		s.endpoint, useTLS = u, strings.HasPrefix(u, "https:")
		s.exp, s.transport, err = newHTTPExporter(cfg, u, tlsConf)
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

// Endpoint implements agent.Endpointer: host:port for grpc, the metrics URL
// for http, for the delivery loop's log lines.
func (s *Sink) Endpoint() string { return s.endpoint }

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
		written int
		se      *agent.SinkError
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
			if se = s.exportRun(ctx, r.server, pts); se != nil {
				break
			}
			written += len(pts)
		}
		if bad >= 0 {
			se = &agent.SinkError{Kind: agent.Permanent, Rejected: 1,
				Err: fmt.Errorf("otlp export: point cannot be exported: %s", problem)}
			break
		}
	}
	s.saveState()
	if se == nil {
		return nil
	}
	return agent.WithProgress(se, written)
}

// exportRun exports the points of one server; nothing goes out when every
// data point was a replay skipped in cumulative mode. The cumulative totals
// are committed only when the collector took the export: after any failure
// the delivery loop sends the same points again (a refused batch in
// halves), and they must add up then.
func (s *Sink) exportRun(ctx context.Context, server string, pts []agent.Point) *agent.SinkError {
	var tx *cumTx
	if s.state != nil {
		tx = s.state.begin()
	}
	req := buildRequest(pts, tx)
	if req.dataPoints == 0 {
		s.countSkipped(req)
		return nil
	}
	rm := req.resourceMetrics(s.resourceFor(server), s.scope)
	err := s.export(ctx, &rm)
	if se := s.redact(classify(err)); se != nil {
		return se
	}
	s.dataPoints.Add(int64(req.dataPoints))
	if ps := partialSuccess(err); ps != nil {
		s.notePartial(ps)
	}
	if tx != nil {
		tx.commit()
	}
	s.countSkipped(req)
	return nil
}

// notePartial counts and logs an export the collector took with a partial
// success.
func (s *Sink) notePartial(ps *partialSuccessError) {
	msg := s.secrets.Scrub(ps.Message)
	switch {
	case ps.Rejected > 0:
		total := s.rejectedDPs.Add(ps.Rejected)
		s.notices.warn(&s.notices.rejected, s.now(),
			"otlp collector rejected data points of an accepted export; they are not sent again",
			"rejected_data_points", ps.Rejected, "rejected_total", total, "message", msg)
	case ps.Unread:
		s.notices.warn(&s.notices.unread, s.now(),
			"otlp collector accepted the data but its answer could not be read", "message", msg)
	default:
		s.notices.warn(&s.notices.warned, s.now(), "otlp collector accepted the data with a warning", "message", msg)
	}
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
		s.notices.warn(&s.notices.replays, s.now(),
			"otlp cumulative mode skipped replayed accounting intervals (already in the totals)",
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
		s.notices.warn(&s.notices.unsaved, s.now(), "otlp cumulative state not saved", "err", err.Error())
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
