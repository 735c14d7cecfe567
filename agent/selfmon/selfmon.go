// Package selfmon is the agent's own HTTP listener: /metrics for
// Prometheus (the agent's health, the Go runtime's and the process's and,
// optionally, the latest PowerMTA values, served by client_golang from a
// registry of its own), /healthz (the process is alive) and /readyz (the
// data is fresh). It binds to 127.0.0.1 unless configured otherwise.
//
// Every field on /metrics is described in names.go: its name in base units
// (_seconds, _bytes, _timestamp_seconds; PowerMTA's KBytes times 1024), its
// HELP text and whether it is a counter. promtool check metrics finds
// nothing to say about the output (TestMetricsPromtool).
package selfmon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Config is the listener's part of the configuration.
type Config struct {
	// Enabled switches the listener on.
	Enabled bool `koanf:"enabled"`
	// Address is host:port; loopback by default.
	Address string `koanf:"address"`
	// PMTAMetrics adds PowerMTA's own values to /metrics, for Prometheus.
	PMTAMetrics bool `koanf:"pmta_metrics"`
	// Ready thresholds: the accounting tail lag must stay below
	// MaxTailLag, and no sink may have been failing for longer than
	// MaxSinkFailure.
	MaxTailLag     time.Duration `koanf:"ready_max_tail_lag"`
	MaxSinkFailure time.Duration `koanf:"ready_max_sink_failure"`
	// APIStale is how old the last successful poll may be (three poll
	// intervals; 0 when the API source is off): the wiring sets it.
	APIStale time.Duration `koanf:"-"`
	// WriteTimeout bounds an answer (30 s when 0); the wiring raises it
	// above api.timeout when the relay, which waits for PowerMTA, is on.
	WriteTimeout time.Duration `koanf:"-"`
	// Version goes into pmta_agent_build_info.
	Version string `koanf:"-"`
}

// DefaultConfig returns the listener's defaults: on, on loopback.
func DefaultConfig() Config {
	return Config{Enabled: true, Address: "127.0.0.1:9099", MaxTailLag: 5 * time.Minute, MaxSinkFailure: 5 * time.Minute}
}

// Validate reports every problem, each starting with its key relative to
// the listen section. A listener that is off is not checked.
func (c Config) Validate() []error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("address: %q is not host:port (e.g. 127.0.0.1:9099)", c.Address))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"ready_max_tail_lag", c.MaxTailLag}, {"ready_max_sink_failure", c.MaxSinkFailure}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be a positive duration such as 10s (is %s)", d.key, d.v))
		}
	}
	return errs
}

// Server serves the endpoints. Latest, when not nil, adds PowerMTA's own
// metrics to /metrics.
type Server struct {
	cfg       Config
	reporters func() []agent.StatsReporter
	log       *slog.Logger
	metrics   http.Handler
	extra     map[string]http.Handler // Handle's
	now       func() time.Time
	started   time.Time
}

// Handle adds an endpoint (the relay's) to those the listener serves; call
// it before Handler or Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	if s.extra == nil {
		s.extra = map[string]http.Handler{}
	}
	s.extra[pattern] = h
}

// New returns a server reading the components' health from reporters.
func New(cfg Config, reporters func() []agent.StatsReporter, latest *Latest, log *slog.Logger) *Server {
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:9099"
	}
	metrics, err := newMetricsHandler(cfg, reporters, latest, log)
	if err != nil {
		// Only a bug can get here (the registry is new and its collectors
		// fixed); what did register is still served.
		log.Error("/metrics: collector not registered", "err", err)
	}
	return &Server{cfg: cfg, reporters: reporters, log: log, metrics: metrics, now: time.Now, started: time.Now()}
}

// Handler returns the mux with /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range s.extra {
		mux.Handle(pattern, h)
	}
	mux.Handle("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive", "uptime_s": int64(s.now().Sub(s.started).Seconds())})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	return mux
}

// Start binds cfg.Address — an address that cannot be bound is an error at
// once, since the operator asked for it — and serves until ctx ends. The
// returned channel yields the server's end (nil after a clean stop).
func (s *Server) Start(ctx context.Context) (<-chan error, error) {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("self-monitoring listener: %w (set listen.address, or listen.enabled: false)", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: cmp.Or(s.cfg.WriteTimeout, 30*time.Second)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("self-monitoring listener up", "address", ln.Addr().String())
	done := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			shCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			done <- srv.Shutdown(shCtx)
		case err := <-served:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			if err != nil {
				s.log.Error("self-monitoring listener stopped", "err", err)
			}
			done <- err
		}
	}()
	return done, nil
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	problems := Readiness(s.now(), s.cfg, s.reporters())
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
