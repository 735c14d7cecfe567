package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/engine"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/deadletter"
	"github.com/pmta-agent/pmta-agent/agent/poller"
	"github.com/pmta-agent/pmta-agent/agent/queue"
	"github.com/pmta-agent/pmta-agent/agent/selfmon"
	"github.com/pmta-agent/pmta-agent/sinks/influx"
	"github.com/pmta-agent/pmta-agent/sinks/otlp"
	"github.com/pmta-agent/pmta-agent/sinks/stdout"
)

// loadConfig reads and validates the configuration; every problem is in the
// returned error, one per line.
func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if errors.Is(err, config.ErrRead) {
		return cfg, err // nothing was loaded: validating the empty result would only add noise
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
		return cfg, fmt.Errorf("invalid configuration:\n  %s", strings.Join(slices.Compact(lines), "\n  "))
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// components are what a configuration builds.
type components struct {
	outputs    *outputs
	sources    []agent.Source
	sinks      []agent.Sink
	deliveries []*engine.Delivery
	pipeline   *engine.Pipeline
	engine     *engine.Engine
	latest     *selfmon.Latest
}

func pollerConfig(a config.API) poller.Config {
	return poller.Config{
		URL: a.URL, Dialect: a.Dialect, Format: a.Format, APIKey: a.APIKey,
		Interval: a.Interval, Timeout: a.Timeout, Jitter: a.Jitter,
		Status: a.Endpoints.Status, Queues: a.Endpoints.Queues, Domains: a.Endpoints.Domains, VMTAs: a.Endpoints.VMTAs,
		MaxItems: a.MaxItems, TLS: a.TLS,
		MaxBodyBytes: int64(a.MaxBodyBytes),
	}
}

func influxConfig(in config.Influx) influx.Config {
	return influx.Config{
		URL: in.URL, Org: in.Org, Bucket: in.Bucket, Token: in.Token, Gzip: in.Gzip,
		BatchSize: in.BatchSize, Timeout: in.Timeout, TLS: in.TLS,
	}
}

func otlpConfig(cfg config.Config) otlp.Config {
	o := cfg.Sinks.OTLP
	return otlp.Config{
		Protocol: o.Protocol, Endpoint: o.Endpoint, Insecure: o.Insecure, TLS: o.TLS, Headers: o.Headers,
		Gzip: o.Gzip, Timeout: o.Timeout, Temporality: o.Temporality, StateDir: filepath.Join(cfg.StateDir, "otlp"),
		Resource: o.Resource, Version: buildVersion(),
	}
}

func pipelineConfig(cfg config.Config, isp *agent.ISPMap) engine.PipelineConfig {
	return engine.PipelineConfig{Server: cfg.Server, Tags: cfg.Tags, ISP: isp, MaxValues: cfg.Pipeline.MaxValues()}
}

func deliveryConfig(q config.Queue, batch int) engine.DeliveryConfig {
	return engine.DeliveryConfig{BatchSize: batch, MinBackoff: q.MinBackoff, MaxBackoff: q.MaxBackoff, Durable: q.Type == "disk"}
}

// openStore opens the buffer a sink's points wait in.
func openStore(cfg config.Config, sink string, q config.Queue, log *slog.Logger) (agent.Store, error) {
	if q.Type == "memory" {
		return queue.NewMemory(q.MaxPoints), nil
	}
	dir := q.Dir
	if dir == "" {
		dir = filepath.Join(cfg.StateDir, "queue", sink)
	}
	st, err := queue.Open(queue.Options{
		Dir: dir, MaxBytes: int64(q.MaxBytes), Sync: queue.SyncPolicy(q.Sync), SyncEvery: q.SyncEvery, Log: log.With("queue", sink),
	})
	if err != nil {
		return nil, fmt.Errorf("%s queue: %w", sink, err)
	}
	return st, nil
}

// outputs are the sinks of a configuration, each behind its delivery loop,
// and the pipeline that feeds them.
type outputs struct {
	stores     []agent.Store // closed after the deliveries stopped
	letters    []io.Closer   // dead-letter files, closed with the stores
	isp        *agent.ISPMap
	latest     *selfmon.Latest // PowerMTA values for /metrics; nil unless listen.pmta_metrics
	sinks      []agent.Sink
	deliveries []*engine.Delivery
	pipeline   *engine.Pipeline
}

func buildOutputs(cfg config.Config, out io.Writer, log *slog.Logger) (*outputs, error) {
	o := &outputs{isp: agent.NewISPMap(cfg.Pipeline.ISPMap)}
	add := func(s agent.Sink, q config.Queue, batch int, inOrder bool) error {
		st, err := openStore(cfg, s.Name(), q, log)
		if err != nil {
			return err
		}
		dc := deliveryConfig(q, batch)
		dc.InOrder = inOrder
		if q.DeadLetterMaxBytes > 0 {
			dl := deadletter.Open(filepath.Join(cfg.StateDir, "deadletter"), s.Name(), int64(q.DeadLetterMaxBytes))
			dc.DeadLetters = dl
			o.letters = append(o.letters, dl)
		}
		o.sinks = append(o.sinks, s)
		o.stores = append(o.stores, st)
		o.deliveries = append(o.deliveries, engine.NewDelivery(s, st, dc, log))
		return nil
	}
	if cfg.Sinks.Stdout.Enabled {
		if err := add(stdout.New(out), cfg.Sinks.Stdout.Buffer, 5000, false); err != nil {
			return nil, o.close(err)
		}
	}
	if cfg.Sinks.Influx.Enabled {
		s, err := influx.New(influxConfig(cfg.Sinks.Influx), log)
		if err != nil {
			return nil, o.close(fmt.Errorf("influx sink: %w", err))
		}
		if err := add(s, cfg.Sinks.Influx.Buffer, cfg.Sinks.Influx.BatchSize, false); err != nil {
			return nil, o.close(err)
		}
	}
	if cfg.Sinks.OTLP.Enabled {
		s, err := otlp.New(otlpConfig(cfg), log)
		if err != nil {
			return nil, o.close(fmt.Errorf("otlp sink: %w", err))
		}
		// Cumulative sums need their intervals in time order: no fresh-first.
		inOrder := cfg.Sinks.OTLP.Temporality == "cumulative"
		if err := add(s, cfg.Sinks.OTLP.Buffer, cfg.Sinks.OTLP.BatchSize, inOrder); err != nil {
			return nil, o.close(err)
		}
	}
	enq := make([]engine.Enqueuer, 0, len(o.deliveries)+1)
	for _, d := range o.deliveries {
		enq = append(enq, d)
	}
	if cfg.Listen.Enabled && cfg.Listen.PMTAMetrics {
		o.latest = selfmon.NewLatest()
		enq = append(enq, o.latest)
	}
	o.pipeline = engine.NewPipeline(pipelineConfig(cfg, o.isp), enq...)
	return o, nil
}

// close closes the stores (a durable queue fsyncs and releases its lock) and
// returns err joined with what closing said.
func (o *outputs) close(err error) error {
	for _, st := range o.stores {
		err = errors.Join(err, closeStore(st))
	}
	for _, dl := range o.letters {
		err = errors.Join(err, dl.Close())
	}
	return err
}

func closeStore(st agent.Store) error {
	if c, ok := st.(agent.Closer); ok {
		return c.Close()
	}
	return nil
}

// build constructs the sources, sinks and engine the configuration asks for.
// out is where the stdout sink writes.
func build(cfg config.Config, out io.Writer, log *slog.Logger) (*components, error) {
	o, err := buildOutputs(cfg, out, log)
	if err != nil {
		return nil, err
	}
	c := &components{outputs: o, sinks: o.sinks, deliveries: o.deliveries, pipeline: o.pipeline, latest: o.latest}
	if cfg.API.Enabled {
		p, err := poller.New(pollerConfig(cfg.API), log)
		if err != nil {
			return nil, o.close(fmt.Errorf("api poller: %w", err))
		}
		c.sources = append(c.sources, p)
	}
	if cfg.Acct.Enabled {
		t, err := newTailer(cfg, o.isp, log)
		if err != nil {
			return nil, o.close(fmt.Errorf("accounting tailer: %w", err))
		}
		c.sources = append(c.sources, t)
	}
	c.engine = engine.NewEngine(engine.EngineConfig{SelfInterval: cfg.SelfInterval, ShutdownTimeout: cfg.ShutdownTimeout},
		c.pipeline, c.deliveries, c.sources, log)
	return c, nil
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

// cmdRun runs the agent; every SIGHUP from hups is logged while it runs and
// drains.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, hups <-chan os.Signal) error {
	cfg, err := configFromFlags("run", args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	done := make(chan struct{})
	defer close(done)
	go logHangups(hups, done, log)
	applyMemoryLimit(cfg)
	return runAgent(ctx, cfg, stdout, log)
}

// applyMemoryLimit sets the runtime's soft memory limit unless GOMEMLIMIT
// already did.
func applyMemoryLimit(cfg config.Config) {
	if os.Getenv("GOMEMLIMIT") == "" && cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
}

// runAgent runs a validated configuration until ctx ends.
func runAgent(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	c, err := build(cfg, stdout, log)
	if err != nil {
		return err
	}
	log.Info("pmta-agent starting", "version", buildVersion(), "server", cfg.Server,
		"sources", len(c.sources), "sinks", len(c.sinks))
	var listenDone <-chan error
	stopListen := func() {}
	if cfg.Listen.Enabled {
		stale := time.Duration(0)
		if cfg.API.Enabled {
			stale = 3 * cfg.API.Interval
		}
		mon := selfmon.New(selfmon.Config{
			Address: cfg.Listen.Address, Version: buildVersion(), APIStale: stale,
			MaxTailLag: cfg.Listen.ReadyMaxTailLag, MaxSinkFailure: cfg.Listen.ReadyMaxSinkFailure,
		}, c.engine.Reporters, c.latest, log)
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stopListen = cancel
		if listenDone, err = mon.Start(lctx); err != nil {
			return err
		}
	}
	runErr := c.engine.Run(ctx)
	if listenDone != nil {
		stopListen() // also when the engine stopped on its own (a source failed)
		runErr = errors.Join(runErr, <-listenDone)
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	closeErr := c.outputs.close(c.engine.Close(closeCtx))
	log.Info("pmta-agent stopped")
	return errors.Join(runErr, closeErr)
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	cfg, err := configFromFlags("check-config", args, stderr)
	if err != nil {
		return err
	}
	if cfg.Acct.Enabled {
		// The configuration is valid, but the tailer would read nothing.
		if probs := acct.CheckFiles(cfg.Acct.Globs); len(probs) > 0 {
			return fmt.Errorf("the accounting files cannot be read:\n  %s", strings.Join(probs, "\n  "))
		}
	}
	fmt.Fprintln(stdout, "configuration OK")
	return nil
}

// cmdOnce runs one collection round of every source that can gather on
// demand and prints the points as line protocol, like `telegraf --test`.
func cmdOnce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := configFromFlags("once", args, stderr)
	if err != nil {
		return err
	}
	return gatherOnce(ctx, cfg, stdout, newLogger(cfg, stderr))
}

func gatherOnce(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	cfg.Sinks = config.Sinks{}
	cfg.Acct.Enabled = false // the tailer has no one-round mode; do not touch its state
	c, err := build(cfg, io.Discard, log)
	if err != nil {
		return err
	}
	defer func() { _ = c.outputs.close(c.engine.Close(context.WithoutCancel(ctx))) }()
	var errs []error
	for _, s := range c.sources {
		g, ok := s.(agent.Gatherer)
		if !ok {
			continue
		}
		b, err := g.Gather(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
		if _, err := stdout.Write(agent.LineProtocol(c.pipeline.Process(b.Points))); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
	}
	return errors.Join(errs...)
}
