package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
	"github.com/pmta-agent/pmta-agent/agent/poller"
	"github.com/pmta-agent/pmta-agent/agent/relay"
	"github.com/pmta-agent/pmta-agent/agent/selfmon"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
	"github.com/pmta-agent/pmta-agent/sinks/influx"
	"github.com/pmta-agent/pmta-agent/sinks/otlp"
	"github.com/pmta-agent/pmta-agent/sinks/stdout"
)

// loadConfig reads and validates the configuration; every problem is in the
// returned error, one per line.
func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if errors.Is(err, config.ErrRead) {
		return cfg, configError{err} // nothing was loaded: validating the empty result would only add noise
	}
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	if verr := cfg.Validate(); verr != nil {
		problems = append(problems, verr)
	}
	if len(problems) > 0 {
		// One problem a line, in key path order whichever check found it.
		lines := strings.Split(errors.Join(problems...).Error(), "\n")
		slices.Sort(lines)
		return cfg, configError{fmt.Errorf("invalid configuration:\n  %s", strings.Join(slices.Compact(lines), "\n  "))}
	}
	return cfg, nil
}

// configError marks a configuration that cannot be used: exit status
// exitConfig, which the systemd unit lists in RestartPreventExitStatus, so
// that a broken file is said once instead of restarted every few seconds.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

const exitConfig = 3

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	log, _ := newLevelLogger(cfg, w)
	return log
}

// newLevelLogger returns the logger cfg asks for and its level, which a
// reload may change.
func newLevelLogger(cfg config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		opts.ReplaceAttr = durationSeconds
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// durationSeconds writes durations as seconds: JSON has no duration type,
// and slog's default, nanoseconds, is what no log pipeline expects.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}

// applyMemoryLimit sets the runtime's soft memory limit unless GOMEMLIMIT
// already did.
func applyMemoryLimit(cfg config.Config) {
	if os.Getenv("GOMEMLIMIT") == "" && cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
}

// built is what a configuration builds: the engine, which owns every source
// and sink from here on, and PowerMTA's latest values for /metrics (nil
// unless listen.pmta_metrics).
type built struct {
	engine *engine.Engine
	latest *selfmon.Latest
	isp    *agent.ISPMap // the one map of the tailer and the pipeline
	relay  *relay.Relay  // nil unless relay.enabled
	// verdicts is the accounting tailer's verdict window, which a reload
	// hands to the tailer replacing it (nil: none yet).
	verdicts *verdict.Window
}

// build turns a validated configuration into the engine that runs it: the
// sources and the sinks it asks for, each sink with its buffer. out is
// where the stdout sink writes.
func build(cfg config.Config, out io.Writer, log *slog.Logger) (*built, error) {
	var owned []any // closed if anything fails before the engine owns them
	fail := func(err error) (*built, error) {
		for _, v := range owned {
			if c, ok := v.(agent.Closer); ok {
				err = errors.Join(err, c.Close())
			}
		}
		return nil, err
	}

	// One ISP map for the tailer and the pipeline: they agree, and its
	// cache exists once.
	isp := agent.NewISPMap(cfg.Pipeline.ISPMap)
	var sources []agent.Source
	if cfg.API.Enabled {
		p, err := newPoller(cfg, log)
		if err != nil {
			return fail(err)
		}
		sources, owned = append(sources, p), append(owned, p)
	}
	var verdicts *verdict.Window
	if cfg.Acct.Enabled {
		t, err := newTailer(cfg, isp, nil, log)
		if err != nil {
			return fail(err)
		}
		sources, owned = append(sources, t), append(owned, t)
		verdicts = t.VerdictWindow()
	}
	if watchPMTA(cfg) {
		w, err := newConfigWatcher(cfg, log)
		if err != nil {
			return fail(err)
		}
		sources = append(sources, w)
	}

	var outputs []engine.Output
	s := cfg.Sinks
	if s.Stdout.Enabled {
		outputs = append(outputs, engine.Output{Sink: stdout.New(out), Buffer: s.Stdout.Buffer})
	}
	if s.Influx.Enabled {
		sink, err := influx.New(s.Influx.Config, log)
		if err != nil {
			return fail(fmt.Errorf("influx sink: %w", err))
		}
		outputs, owned = append(outputs, engine.Output{Sink: sink, Buffer: s.Influx.Buffer, BatchSize: s.Influx.BatchSize}), append(owned, sink)
	}
	if s.OTLP.Enabled {
		oc := s.OTLP.Config
		oc.StateDir, oc.Version = filepath.Join(cfg.StateDir, "otlp"), buildVersion()
		sink, err := otlp.New(oc, log)
		if err != nil {
			return fail(fmt.Errorf("otlp sink: %w", err))
		}
		// Cumulative sums need their intervals in time order: no fresh-first.
		outputs = append(outputs, engine.Output{Sink: sink, Buffer: s.OTLP.Buffer, BatchSize: oc.BatchSize,
			InOrder: oc.Temporality == otlp.TemporalityCumulative})
		owned = append(owned, sink)
	}

	b := &built{isp: isp, verdicts: verdicts}
	var taps []engine.Enqueuer
	if cfg.Listen.Enabled && cfg.Listen.PMTAMetrics {
		b.latest = selfmon.NewLatest()
		b.latest.ExpireAfter("pmta_verdict", verdictTTL(cfg))
		taps = append(taps, b.latest)
	}
	if cfg.Relay.Enabled && cfg.Listen.Enabled {
		client, err := pmtacmd.NewClient(cfg.API, log)
		if err != nil {
			return fail(fmt.Errorf("relay: %w", err))
		}
		// The audit's events go through the engine's pipeline, like any
		// point: the engine exists once New returns.
		emit := func(batch agent.Batch) { b.engine.Pipeline().Emit(batch) }
		if b.relay, err = relay.New(cfg.Relay, cfg.API.Dialect, client, emit, log); err != nil {
			return fail(err)
		}
		b.relay.SetCommandTimeout(cfg.API.Timeout)
		taps = append(taps, b.relay.Tap())
	}
	e, err := engine.New(engine.Config{StateDir: cfg.StateDir, SelfInterval: cfg.SelfInterval,
		ShutdownTimeout: cfg.ShutdownTimeout, Pipeline: pipelineConfig(cfg, isp)}, sources, outputs, taps, log)
	if err != nil {
		return nil, err // New closed the sources and sinks
	}
	b.engine = e
	return b, nil
}

// newPoller builds the API source of cfg.
func newPoller(cfg config.Config, log *slog.Logger) (*poller.Poller, error) {
	p, err := poller.New(cfg.API, log)
	if err != nil {
		return nil, fmt.Errorf("api poller: %w", err)
	}
	return p, nil
}

// verdictTTL is how long /metrics serves the verdicts after the batch that
// brought them: they come a step after the records, and three steps
// without one mean PowerMTA has logged nothing for two — no verdict holds.
func verdictTTL(cfg config.Config) time.Duration {
	return 3*cfg.Acct.Verdict.Every + cfg.Acct.Interval
}

// newTailer builds the accounting source of cfg, its state under state_dir,
// carrying on with the verdict window w of the tailer it replaces (nil: a
// new one).
func newTailer(cfg config.Config, isp *agent.ISPMap, w *verdict.Window, log *slog.Logger) (*acct.Tailer, error) {
	a := cfg.Acct
	a.StateDir = filepath.Join(cfg.StateDir, "acct")
	a.VerdictWindow = w
	t, err := acct.NewTailer(a, isp, log)
	if err != nil {
		return nil, fmt.Errorf("accounting tailer: %w", err)
	}
	return t, nil
}

// watchPMTA says whether PowerMTA's configuration is followed for changes:
// when pmta.watch is on and the file was read at start (on a host without
// PowerMTA there is nothing to follow).
func watchPMTA(cfg config.Config) bool {
	if !cfg.PMTA.Watch || cfg.Derived == nil {
		return false
	}
	f, err := os.Open(cfg.Derived.File) // one that cannot be read was warned about: no watcher failing every check
	if err != nil {
		return false
	}
	_ = f.Close()
	return true
}

// newConfigWatcher builds the source of config_change events, and of the
// pmta_impact points of each change (impact_watch.go).
func newConfigWatcher(cfg config.Config, log *slog.Logger) (agent.Source, error) {
	w, err := confwatch.New(confwatch.Config{Path: cfg.Derived.File, Interval: cfg.PMTA.WatchInterval, StateDir: cfg.StateDir}, log)
	if err != nil {
		return nil, fmt.Errorf("pmta.watch: %w", err)
	}
	return withImpact(cfg, w, log)
}

// pipelineConfig is the pipeline's part of cfg, with the top-level server
// and tags and the ISP map the tailer shares.
func pipelineConfig(cfg config.Config, isp *agent.ISPMap) engine.PipelineConfig {
	pl := cfg.Pipeline
	pl.Server, pl.Tags, pl.ISP = cfg.Server, cfg.Tags, isp
	return pl
}

// configFromFlags parses the -config flag that run, once and check-config
// share and loads that configuration.
func configFromFlags(cmd string, args []string, stderr io.Writer) (config.Config, error) {
	fs := newFlagSet(cmd, stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return config.Config{}, err
	}
	return loadConfig(*path)
}

// cmdRun runs the agent; each SIGHUP from hups reloads the configuration.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, hups <-chan os.Signal) error {
	fs := newFlagSet("run", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, level := newLevelLogger(cfg, stderr)
	applyMemoryLimit(cfg)
	r := &reloader{path: *path, cur: cfg, level: level, log: log}
	return serveAgent(ctx, cfg, stdout, log, func(wctx context.Context, b *built, sd sdNotifier) {
		r.b, r.sd = b, sd
		r.watch(wctx, hups)
	})
}

// runAgent runs a validated configuration until ctx ends: build, serve the
// agent's own endpoints, run, close.
func runAgent(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	return serveAgent(ctx, cfg, stdout, log, nil)
}

// serveAgent is runAgent with, when watch is not nil, a goroutine running
// watch while the engine runs (the reloader).
func serveAgent(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger,
	watch func(context.Context, *built, sdNotifier)) error {
	b, err := build(cfg, stdout, log)
	if err != nil {
		return err
	}
	log.Info("pmta-agent starting", "version", buildVersion(), "server", cfg.Server,
		"sources", len(b.engine.Sources()), "sinks", len(b.engine.Deliveries()))
	logDerivation(cfg.Derived, log)
	closeEngine := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		return b.engine.Close(ctx)
	}
	listenDone, stopListen, err := startListener(ctx, cfg, b, log)
	if err != nil {
		return errors.Join(err, closeEngine())
	}
	sd := newSDNotifier()
	notifyErr := func(err error) { log.Warn("systemd notification failed", "err", err) }
	b.engine.OnStarted(func() {
		if err := sd.notify("READY=1"); err != nil {
			notifyErr(err)
		}
	})
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go sd.keepAlive(wctx, notifyErr)
	if watch != nil {
		go watch(wctx, b, sd)
	}
	go func() {
		<-wctx.Done()
		if ctx.Err() != nil {
			_ = sd.notify("STOPPING=1")
		}
	}()
	runErr := b.engine.Run(ctx)
	stopListen() // also when the engine stopped on its own (a source failed)
	runErr = errors.Join(runErr, <-listenDone)
	closeErr := closeEngine()
	log.Info("pmta-agent stopped")
	return errors.Join(runErr, closeErr)
}

// startListener serves /metrics, /healthz and /readyz when listen.enabled.
func startListener(ctx context.Context, cfg config.Config, b *built, log *slog.Logger) (<-chan error, func(), error) {
	if !cfg.Listen.Enabled {
		done := make(chan error)
		close(done)
		return done, func() {}, nil
	}
	lc := cfg.Listen
	lc.Version = buildVersion()
	// Also when the API source is off: a reload may turn it on (its
	// interval cannot change without a restart).
	lc.APIStale = 3 * cfg.API.Interval
	lctx, cancel := context.WithCancel(ctx)
	if b.relay != nil {
		// A relayed command waits for PowerMTA up to api.timeout: its
		// answer must not be cut off before (the relay sets each answer's
		// own deadline too, which follows a reload).
		lc.WriteTimeout = max(30*time.Second, cfg.API.Timeout+10*time.Second)
	}
	srv := selfmon.New(lc, b.engine.Reporters, b.latest, log)
	if b.relay != nil {
		for pattern, h := range b.relay.Routes() {
			srv.Handle(pattern, h)
		}
		log.Warn("relay on: PowerMTA commands accepted from token holders", "allow", strings.Join(cfg.Relay.Allow, ","),
			"alertmanager", cfg.Relay.Alertmanager.Enabled, "dry_run", cfg.Relay.Alertmanager.DryRun)
	}
	done, err := srv.Start(lctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return done, cancel, nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	cfg, err := configFromFlags("check-config", args, stderr)
	if err != nil {
		return err
	}
	// What came from PowerMTA's configuration first: the globs the check
	// below finds unreadable may be derived.
	printDerivation(cfg.Derived, stdout, stderr)
	if cfg.Acct.Enabled {
		// The configuration is valid, but the tailer would read nothing.
		if probs := acct.CheckFiles(cfg.Acct.Globs); len(probs) > 0 {
			return configError{fmt.Errorf("the accounting files cannot be read:\n  %s", strings.Join(probs, "\n  "))}
		}
	}
	fmt.Fprintln(stdout, "configuration OK")
	return nil
}

// cmdInit prints the configuration `run` would use, as YAML that loads back
// to it: the defaults, the file and environment if any, and what PowerMTA's
// configuration gives (each such line with a comment naming its source
// line, commented out so that a saved file goes on following PowerMTA's);
// secrets are never printed. Notes, risks and what would keep `run` from
// starting (validation) go to stderr with exit status 0, so that the output
// can be saved and edited; a file or environment that cannot be loaded at
// all is exit status 3, as for every command.
func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	path := fs.String("config", "", "a configuration file to start from (YAML)")
	pmtaPath := fs.String("pmta-config", "", "PowerMTA's configuration (default: pmta.config, "+pmtaconf.DefaultPath+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	env := os.Environ()
	if *pmtaPath != "" {
		env = append(env, config.EnvPrefix+"PMTA__CONFIG="+*pmtaPath)
	}
	cfg, err := config.Load(*path, env)
	if err != nil {
		return configError{err}
	}
	fmt.Fprintf(stdout, "# pmta-agent configuration, as `pmta-agent init` printed it (%s).\n", buildVersion())
	if cfg.Derived != nil {
		fmt.Fprintf(stdout, "# Lines marked \"from PowerMTA's config\" are read from %s at each start\n", cfg.Derived.File)
		fmt.Fprintln(stdout, "# (commented out here; uncomment one to pin it). Secrets are never printed.")
	}
	if _, err := stdout.Write(cfg.YAML()); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	printFindings(cfg.Derived, stderr)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "warning: run would refuse this configuration as it is: %v\n", err)
	}
	return nil
}

// logDerivation logs what was taken from PowerMTA's configuration: each
// setting with its line (INFO), the notes (INFO) and the risks (WARN).
func logDerivation(d *config.Derivation, log *slog.Logger) {
	if d == nil {
		return
	}
	for _, k := range d.Keys() {
		log.Info("setting taken from PowerMTA's configuration", "setting", k, "from", d.Origins[k])
	}
	for _, n := range d.Notes {
		log.Info("PowerMTA's configuration", "note", n)
	}
	for _, w := range d.Warnings {
		log.Warn("PowerMTA's configuration is risky", "warning", w)
	}
}

// printDerivation shows the same for check-config: the settings on stdout,
// notes and warnings on stderr.
func printDerivation(d *config.Derivation, stdout, stderr io.Writer) {
	if d == nil {
		return
	}
	fmt.Fprintf(stdout, "from PowerMTA's configuration %s:\n", d.File)
	for _, k := range d.Keys() {
		fmt.Fprintf(stdout, "  %s  (%s)\n", k, d.Origins[k])
	}
	printFindings(d, stderr)
}

// printFindings prints what PowerMTA's configuration has to say: notes and
// risks, one a line.
func printFindings(d *config.Derivation, w io.Writer) {
	if d == nil {
		return
	}
	for _, n := range d.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, r := range d.Warnings {
		fmt.Fprintf(w, "warning: %s\n", r)
	}
}

// cmdOnce runs one collection round of every source that can gather on
// demand and prints the points as line protocol, like `telegraf --test`;
// with -sinks it sends the round through the configured sinks instead and
// reports what each did with it, like `telegraf --once`: the "does my
// InfluxDB token work" test.
func cmdOnce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("once", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	sinks := fs.Bool("sinks", false, "send the round through the configured sinks and report each one's answer")
	stall := fs.Duration("stall", 30*time.Second, "with -sinks: give up on a sink that takes none of the points for this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *stall <= 0 {
		return usageError{fmt.Errorf("-stall is %s; want more than 0", *stall)}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if !*sinks {
		return gatherOnce(ctx, cfg, stdout, stderr, log)
	}
	return sendOnce(ctx, cfg, *stall, stderr, log)
}

// memoryBuffers puts every sink's points in an unbounded memory buffer: a
// run of backfill or once -sinks may not take the daemon's disk queues,
// whose locks it may hold, and waits for the sinks instead of dropping.
func memoryBuffers(cfg *config.Config) {
	for _, b := range []*engine.BufferConfig{&cfg.Sinks.Stdout.Buffer, &cfg.Sinks.Influx.Buffer, &cfg.Sinks.OTLP.Buffer} {
		b.Type, b.MaxPoints = "memory", math.MaxInt
	}
}

// feedSinks is a one-shot command's way to the sinks (once -sinks,
// backfill, impact -send): the engine of cfg with no live source (but the
// API when keepAPI: once gathers a round), no listener and no watcher,
// each sink behind an unbounded memory buffer (the daemon may hold the
// disk queues' locks), fed what produce emits until every sink took it or
// one stalls. Then summary writes the command's own line on stderr,
// followed by each sink's (reportSinks); the error says when a sink did not
// take every point. out is where the stdout sink writes.
func feedSinks(ctx context.Context, cfg config.Config, keepAPI bool, what string, opts engine.FeedOptions, out, stderr io.Writer,
	log *slog.Logger, produce func(ctx context.Context, b *built, emit func(agent.Batch)) error, summary func(io.Writer)) error {
	cfg.API.Enabled = cfg.API.Enabled && keepAPI
	cfg.Acct.Enabled, cfg.Listen.Enabled, cfg.PMTA.Watch = false, false, false
	memoryBuffers(&cfg)
	b, err := build(cfg, out, log)
	if err != nil {
		return err
	}
	feedErr := b.engine.Feed(ctx, opts, func(ctx context.Context, emit func(agent.Batch)) error { return produce(ctx, b, emit) })
	// The sinks' counts are read before Close; they print after the
	// command's summary.
	var lines strings.Builder
	sinkErr := reportSinks(&lines, what, b.engine.Deliveries())
	closeErr := b.engine.Close(context.WithoutCancel(ctx))
	summary(stderr)
	io.WriteString(stderr, lines.String())
	return errors.Join(feedErr, closeErr, sinkErr)
}

// sendOnce gathers one round and hands it to the configured sinks (see
// feedSinks), and reports each sink's answer; it fails when a sink did not
// take every point.
func sendOnce(ctx context.Context, cfg config.Config, stall time.Duration, stderr io.Writer, log *slog.Logger) error {
	var gathered int
	var gatherErr, previewErr error
	err := feedSinks(ctx, cfg, true, "once", engine.FeedOptions{Stall: stall}, io.Discard, stderr, log,
		func(ctx context.Context, b *built, emit func(agent.Batch)) error {
			// The accounting preview is said, not sent: the running agent
			// writes the same series and times from whole intervals, which
			// a preview's view (the end of the newest file, its own domain
			// cap) would overwrite with smaller counts, and a delta OTLP
			// sum would count twice.
			_, previewErr = acctPreview(cfg.Acct, b, stderr)
			var pts []agent.Point
			pts, gatherErr = b.engine.Gather(ctx)
			if len(pts) == 0 {
				// No API source: the agent's own health, so that each sink
				// is still written to and answers.
				pts = b.engine.SelfPoints(time.Now())
			}
			gathered = len(pts)
			emit(agent.Batch{Source: "once", Points: pts})
			return nil
		},
		func(w io.Writer) { fmt.Fprintf(w, "once: %d points gathered\n", gathered) })
	return errors.Join(gatherErr, previewErr, err)
}

func gatherOnce(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, log *slog.Logger) error {
	cfg.Sinks = config.Sinks{}
	preview := cfg.Acct
	cfg.Acct.Enabled = false // the preview reads the files; the tailer's state is not touched
	b, err := build(cfg, io.Discard, log)
	if err != nil {
		return err
	}
	defer func() { _ = b.engine.Close(context.WithoutCancel(ctx)) }()
	pts, gatherErr := b.engine.Gather(ctx)
	acctPts, previewErr := acctPreview(preview, b, stderr)
	if _, err := stdout.Write(agent.LineProtocol(append(pts, b.engine.Pipeline().Process(acctPts)...))); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return errors.Join(gatherErr, previewErr)
}

// acctPreview returns what the newest accounting files hold for their last
// closed intervals (acct.Preview), untagged, and says what it read on w:
// without the tailer's checkpoint and lock, so also beside a running agent.
func acctPreview(a acct.Config, b *built, w io.Writer) ([]agent.Point, error) {
	if !a.Enabled {
		return nil, nil
	}
	res, err := acct.Preview(acct.PreviewOptions{Config: a}, b.isp)
	switch {
	case len(res.Files) == 0:
		fmt.Fprintf(w, "once: accounting preview: no file matches acct.globs %s\n", strings.Join(a.Globs, " "))
	case len(res.Points) == 0:
		fmt.Fprintf(w, "once: accounting preview: no closed interval in the end of %s\n", strings.Join(res.Files, ", "))
	default:
		fmt.Fprintf(w, "once: accounting preview: %d records logged %s to %s in %s (the newest closed intervals, read from the files' end; not counted by the running agent's checkpoint)\n",
			res.Records, res.From.Format(time.RFC3339), res.To.Format(time.RFC3339), strings.Join(res.Files, ", "))
	}
	if err != nil {
		err = fmt.Errorf("accounting preview: %w", err)
	}
	return res.Points, err
}
