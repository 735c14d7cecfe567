package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// cmdDemo starts the PowerMTA simulator in-process on a loopback port and
// runs the agent against it with the stdout sink, so that a newcomer sees
// real output with no PowerMTA and no database.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dialect := fs.String("dialect", "pmta", "API dialect the simulator is read in: pmta or seed")
	format := fs.String("format", "json", "pmta dialect document format: json or xml")
	interval := fs.Duration("interval", 5*time.Second, "poll interval")
	rate := fs.Float64("rate", 200, "simulated delivered recipients per second")
	acct := fs.Bool("acct", true, "also write accounting files and tail them")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	seed := fs.Int64("seed", 1, "simulator seed")
	listen := fs.String("listen", "127.0.0.1:0", "the agent's /metrics, /healthz, /readyz listener (port 0: any free port)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	s := sim.New(sim.Options{Seed: *seed, Rate: *rate})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the simulator: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cfg := config.Default()
	cfg.Server = "demo-mta01"
	cfg.API.URL = "http://" + ln.Addr().String()
	cfg.API.Dialect = *dialect
	cfg.API.Format = *format
	cfg.API.Interval = *interval
	cfg.API.Timeout = min(cfg.API.Timeout, *interval)
	cfg.API.Jitter = 0
	cfg.SelfInterval = max(*interval, 10*time.Second)
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Listen.Address = *listen
	cfg.Listen.PMTAMetrics = true
	cfg.Sinks.Stdout.Enabled = true
	cfg.Sinks.Influx.Enabled = false

	var stopAcct func() error
	if *acct {
		dir, err := os.MkdirTemp("", "pmta-agent-demo-")
		if err != nil {
			return fmt.Errorf("demo directory: %w", err)
		}
		defer os.RemoveAll(dir)
		logs, state := filepath.Join(dir, "log"), filepath.Join(dir, "state")
		for _, d := range []string{logs, state} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				return fmt.Errorf("demo directory: %w", err)
			}
		}
		stopAcct, err = startDemoAcct(ctx, s, logs, *rate)
		if err != nil {
			return err
		}
		cfg.StateDir = state
		cfg.Acct.Enabled = true
		cfg.Acct.StartAt = "beginning"
		cfg.Acct.Globs = []string{filepath.Join(logs, "acct-*.csv"), filepath.Join(logs, "diag-*.csv")}
		cfg.Acct.Interval = 5 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	log := newLogger(cfg, stderr)
	log.Info("demo: PowerMTA simulator listening; line protocol follows on stdout (Ctrl-C to stop)",
		"url", cfg.API.URL, "dialect", *dialect, "interval", *interval, "acct", *acct)
	err = runAgent(ctx, cfg, stdout, log)
	if stopAcct != nil {
		err = errors.Join(err, stopAcct())
	}
	return err
}

// startDemoAcct writes accounting records into dir once a second, at about
// rate records per second, rotating small files so rotation shows too.
func startDemoAcct(ctx context.Context, s *sim.Sim, dir string, rate float64) (stop func() error, err error) {
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: dir, SplitDiag: true, MaxSize: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("demo accounting writer: %w", err)
	}
	perSecond := max(1, int(rate))
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var werr error
		for werr == nil {
			select {
			case <-quit:
				done <- nil
				return
			case <-ctx.Done():
				done <- nil
				return
			case now := <-t.C:
				werr = w.Write(perSecond, now)
			}
		}
		done <- werr
	}()
	return func() error {
		close(quit)
		return errors.Join(<-done, w.Close())
	}, nil
}
