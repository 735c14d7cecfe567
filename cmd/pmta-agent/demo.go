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
	"strconv"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// defaultDemoScenarios are what the demo shows in its first minutes: an IP
// with a reputation problem (ip_specific), a pool an ISP throttles
// (pool_wide), a configuration change that halves google's deferrals and
// one that changes nothing.
const defaultDemoScenarios = "ip-reputation,pool-throttle,config-fix@1m,config-noop@2m"

// cmdDemo starts the PowerMTA simulator in-process on a loopback port and
// runs the agent against it with the stdout sink, so that a newcomer sees
// real output with no PowerMTA and no database. With accounting files (the
// default) the simulator also writes its PowerMTA configuration, which the
// agent reads and watches, and plays scenarios, so that the verdicts and the
// configuration-change events show too.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dialect := fs.String("dialect", "pmta", "API dialect the simulator is read in: pmta or seed")
	format := fs.String("format", "json", "pmta dialect document format: json or xml")
	interval := fs.Duration("interval", 5*time.Second, "poll interval")
	rate := fs.Float64("rate", 200, "simulated delivered recipients per second")
	acct := fs.Bool("acct", true, "also write accounting files and PowerMTA's configuration, and follow them")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	seed := fs.Int64("seed", 1, "simulator seed")
	listen := fs.String("listen", "127.0.0.1:0", "the agent's /metrics, /healthz, /readyz listener (port 0: any free port)")
	dir := fs.String("dir", "", "keep the demo's files here — accounting files, PowerMTA's configuration, the agent's (pmta-agent.yaml) and its state — for `pmta-agent impact -config DIR/pmta-agent.yaml` afterwards (default: a temporary directory, removed)")
	scenarios := fs.String("scenario", defaultDemoScenarios, "the simulator's scenarios, NAME or NAME@DURATION after the start, comma-separated (\"\": none); names: "+strings.Join(sim.ScenarioNames(), ", "))
	impactWindow := fs.Duration("impact-window", time.Minute, "how long before and after each configuration change the agent compares (pmta.impact_window: whole seconds, at least 1m)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	steps, err := sim.ParseSchedule(*scenarios)
	if err != nil {
		return usageError{err}
	}
	if !*acct {
		// The scenarios show in the accounting files: without them only
		// a -scenario asked for is an error.
		if flagSet(fs, "scenario") && len(steps) > 0 {
			return usageError{errors.New("-scenario needs the accounting files (-acct)")}
		}
		steps = nil
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

	root := *dir
	if root == "" {
		if root, err = os.MkdirTemp("", "pmta-agent-demo-"); err != nil {
			return fmt.Errorf("demo directory: %w", err)
		}
		defer os.RemoveAll(root)
	} else if root, err = filepath.Abs(root); err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	d := demoFiles{root: root, logs: filepath.Join(root, "log"), state: filepath.Join(root, "state"),
		pmtaConfig: filepath.Join(root, "pmta", "config"), agentConfig: filepath.Join(root, "pmta-agent.yaml")}
	for _, p := range []string{d.logs, d.state, filepath.Dir(d.pmtaConfig)} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			return fmt.Errorf("demo directory: %w", err)
		}
	}
	var stopAcct func() error
	if *acct {
		o := sim.ConfigOptions{HTTPPort: ln.Addr().(*net.TCPAddr).Port, AcctDir: d.logs, AcctSplitDiag: true, AcctMaxSize: demoMaxSize}
		if steps.Has("config-fix") {
			o.GoogleDeferral = sim.TightGoogleDeferral
		}
		if err := s.WriteConfig(d.pmtaConfig, o); err != nil {
			return fmt.Errorf("demo PowerMTA configuration: %w", err)
		}
	}
	yaml := demoConfig(d, "http://"+ln.Addr().String(), *dialect, *format, *interval, *listen, *acct, *impactWindow)
	if err := os.WriteFile(d.agentConfig, []byte(yaml), 0o600); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	cfg, err := loadConfig(d.agentConfig)
	if err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	log := newLogger(cfg, stderr)
	// The start's scenarios are in place before the first record; the
	// later ones run on their schedule.
	later, err := s.RunSchedule(ctx, time.Now(), steps, log)
	if err != nil {
		return err
	}
	if *acct {
		if stopAcct, err = startDemoAcct(ctx, s, d.logs, *rate); err != nil {
			return err
		}
	}
	log.Info("demo: PowerMTA simulator listening; line protocol follows on stdout (Ctrl-C to stop)",
		"url", cfg.API.URL, "dialect", *dialect, "interval", *interval, "acct", *acct, "scenarios", *scenarios)
	if *dir != "" {
		log.Info("demo: files kept", "dir", root, "then", "pmta-agent impact -config "+d.agentConfig+" -window "+impactWindow.String())
	}
	err = runAgent(ctx, cfg, stdout, log)
	err = errors.Join(err, later())
	if stopAcct != nil {
		err = errors.Join(err, stopAcct())
	}
	return err
}

// demoMaxSize rotates the demo's accounting files often, so that rotation
// shows too.
const demoMaxSize = 1 << 20

// demoFiles are where the demo keeps things.
type demoFiles struct{ root, logs, state, pmtaConfig, agentConfig string }

// demoConfig is the agent's configuration for the demo, as a file a user
// can read and hand to other commands (impact, once, check-config): the
// stdout sink, the simulator's API, its accounting files and PowerMTA
// configuration watched every second, verdicts every 15 s over 5 minutes.
func demoConfig(d demoFiles, url, dialect, format string, interval time.Duration, listen string, acct bool, impactWindow time.Duration) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `pmta-agent demo`: the simulator's PowerMTA, the stdout sink.\n")
	fmt.Fprintf(&b, "server: demo-mta01\nstate_dir: %s\nshutdown_timeout: 5s\nself_interval: %s\n", q(d.state), max(interval, 10*time.Second))
	fmt.Fprintf(&b, "listen:\n  address: %s\n  pmta_metrics: true\n", q(listen))
	fmt.Fprintf(&b, "api:\n  url: %s\n  dialect: %s\n  format: %s\n  interval: %s\n  timeout: %s\n  jitter: 0s\n",
		q(url), q(dialect), q(format), interval, min(10*time.Second, interval))
	if acct {
		fmt.Fprintf(&b, "acct:\n  enabled: true\n  start_at: beginning\n  globs: [%s, %s]\n  interval: 5s\n",
			q(filepath.Join(d.logs, "acct-*.csv")), q(filepath.Join(d.logs, "diag-*.csv")))
		fmt.Fprintf(&b, "  verdict:\n    window: 5m\n    every: 15s\n")
		fmt.Fprintf(&b, "pmta:\n  config: %s\n  watch: true\n  watch_interval: 1s\n  impact_window: %s\n  impact_every: 0s\n", q(d.pmtaConfig), impactWindow)
	} else {
		fmt.Fprintf(&b, "pmta:\n  config: \"\"\n")
	}
	fmt.Fprintf(&b, "sinks:\n  stdout:\n    enabled: true\n  influx:\n    enabled: false\n")
	return b.String()
}

// startDemoAcct writes accounting records into dir once a second, at about
// rate records per second, rotating small files so rotation shows too.
func startDemoAcct(ctx context.Context, s *sim.Sim, dir string, rate float64) (stop func() error, err error) {
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: dir, SplitDiag: true, MaxSize: demoMaxSize})
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
