// Package selfmon is the agent's own HTTP listener: /metrics in the
// Prometheus text format (the agent's health and, optionally, the latest
// PowerMTA values), /healthz (the process is alive) and /readyz (the data is
// fresh). It binds to 127.0.0.1 unless configured otherwise.
package selfmon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Config is the listener's part of the configuration.
type Config struct {
	Address string // host:port, default 127.0.0.1:9099
	// Version goes into pmta_agent_build_info.
	Version string
	// Ready thresholds: the last successful poll must be younger than
	// APIStale (three poll intervals; 0 when the API source is off), the
	// accounting tail lag below MaxTailLag, and no sink may have been
	// failing for longer than MaxSinkFailure.
	APIStale       time.Duration
	MaxTailLag     time.Duration
	MaxSinkFailure time.Duration
}

// Server serves the endpoints. Latest, when not nil, adds PowerMTA's own
// metrics to /metrics.
type Server struct {
	cfg       Config
	reporters func() []agent.StatsReporter
	latest    *Latest
	log       *slog.Logger
	now       func() time.Time
	started   time.Time
}

// New returns a server reading the components' health from reporters.
func New(cfg Config, reporters func() []agent.StatsReporter, latest *Latest, log *slog.Logger) *Server {
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:9099"
	}
	return &Server{cfg: cfg, reporters: reporters, latest: latest, log: log, now: time.Now, started: time.Now()}
}

// Handler returns the mux with /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
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
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
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

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b []byte
	b = appendBuildInfo(b, s.cfg.Version, runtime.Version())
	b = appendSelfMetrics(b, s.reporters())
	if s.latest != nil {
		b = s.latest.AppendMetrics(b)
	}
	_, _ = w.Write(b)
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
