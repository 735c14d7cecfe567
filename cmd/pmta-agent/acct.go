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
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/engine"

	"github.com/pmta-agent/pmta-agent/agent/statefile"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
)

// newTailer locks the accounting state directory — two agents tailing into
// one checkpoint would each commit positions the other has not sent — and
// builds the tailer. The lock is released with the tailer's Close.
func newTailer(cfg config.Config, isp *agent.ISPMap, log *slog.Logger) (*lockedTailer, error) {
	dir := filepath.Join(cfg.StateDir, "acct")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("accounting state directory: %w", err)
	}
	lock, err := statefile.LockDir(dir, "accounting state")
	if err != nil {
		return nil, err
	}
	t, err := newAcctTailer(cfg, dir, isp, log)
	if err != nil {
		return nil, errors.Join(err, lock.Release())
	}
	return &lockedTailer{Tailer: t, lock: lock}, nil
}

// lockedTailer is the tailer holding its state directory's lock.
type lockedTailer struct {
	*acct.Tailer
	lock *statefile.DirLock
}

// Close closes the tailer, then releases the lock.
func (t *lockedTailer) Close() error {
	return errors.Join(t.Tailer.Close(), t.lock.Release())
}

func newAcctTailer(cfg config.Config, dir string, isp *agent.ISPMap, log *slog.Logger) (*acct.Tailer, error) {
	a := cfg.Acct
	return acct.NewTailer(acct.Config{
		Globs:        a.Globs,
		StateDir:     dir,
		StartAt:      a.StartAt,
		Interval:     a.Interval,
		Grace:        a.Grace,
		PollEvery:    a.PollEvery,
		TopDiag:      a.TopDiag,
		MaxLineBytes: a.MaxLineBytes,
		MaxClockSkew: a.MaxClockSkew,
		MaxAge:       a.MaxAge,
	}, isp, log)
}

// Backfill holds about backfillHigh points per sink in memory: the reader
// waits for the sinks instead of dropping, so memory stays flat however large
// the files are. The store itself is unbounded (one backfill window may go
// over backfillHigh), so nothing is ever dropped.
const backfillHigh = 20_000

// cmdBackfill aggregates whole accounting files into the configured sinks
// (without -config: line protocol on stdout).
func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backfill", stderr)
	path := fs.String("config", "", "configuration file (YAML); without it, line protocol goes to stdout")
	interval := fs.Duration("interval", 0, "aggregation interval (default: acct.interval of the configuration, 10s)")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return usageError{errors.New("name at least one accounting file")}
	}
	var cfg config.Config
	var err error
	if *path == "" {
		cfg, err = config.Load("", os.Environ())
		cfg.Sinks = config.Sinks{Stdout: config.Stdout{Enabled: true, Buffer: config.Default().Sinks.Stdout.Buffer}}
	} else {
		cfg, err = loadConfig(*path)
	}
	if err != nil {
		return err
	}
	if *interval > 0 {
		cfg.Acct.Interval = *interval
	}
	if cfg.Sinks.OTLP.Enabled && cfg.Sinks.OTLP.Temporality == "cumulative" {
		return errors.New("backfill needs sinks.otlp.temporality: delta — cumulative totals cannot take older intervals " +
			"(PMTA_AGENT_SINKS__OTLP__TEMPORALITY=delta for this run, or PMTA_AGENT_SINKS__OTLP__ENABLED=false)")
	}
	// A backfill can be run again from its files, and the daemon may hold the
	// disk queues' locks: its points wait in memory, with back-pressure.
	for _, b := range []*config.Queue{&cfg.Sinks.Stdout.Buffer, &cfg.Sinks.Influx.Buffer, &cfg.Sinks.OTLP.Buffer} {
		b.Type, b.MaxPoints = "memory", math.MaxInt
	}
	log := newLogger(cfg, stderr)
	applyMemoryLimit(cfg)

	out, err := buildOutputs(cfg, stdout, log)
	if err != nil {
		return err
	}
	dctx, stopDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, d := range out.deliveries {
			go d.Run(dctx)
		}
		<-dctx.Done()
	}()

	showProgress := !*quiet && isTerminal(stderr)
	emit := func(b agent.Batch) {
		out.pipeline.Emit(b)
		waitForRoom(ctx, out.deliveries, backfillHigh)
	}
	progress := func(s acct.BackfillStats) {
		if showProgress {
			fmt.Fprintf(stderr, "\r%d files, %d records, %d malformed, %d points, %.0f records/s   ",
				s.Files, s.Records, s.Malformed, s.Points, float64(s.Records)/max(s.Elapsed.Seconds(), 1e-9))
		}
	}
	stats, bfErr := acct.Backfill(ctx, files, acct.BackfillOptions{
		Interval: cfg.Acct.Interval, TopDiag: cfg.Acct.TopDiag, MaxLineBytes: cfg.Acct.MaxLineBytes,
		MaxClockSkew: cfg.Acct.MaxClockSkew, Logger: log,
	}, agent.NewISPMap(cfg.Pipeline.ISPMap), emit, progress)
	if showProgress {
		fmt.Fprintln(stderr)
	}

	// Everything read must reach the sinks: wait without a deadline unless
	// the user interrupts (then ShutdownTimeout bounds the last attempt).
	waitForRoom(ctx, out.deliveries, 0)
	stopDeliveries()
	<-done
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var drainErrs []error
	for _, d := range out.deliveries {
		drainErrs = append(drainErrs, d.Drain(drainCtx))
	}
	for _, s := range out.sinks {
		if c, ok := s.(agent.Closer); ok {
			drainErrs = append(drainErrs, c.Close())
		}
	}
	drainErrs = append(drainErrs, out.close(nil))
	secs := stats.Elapsed.Seconds()
	fmt.Fprintf(stderr, "backfill: %d files, %d records, %d malformed, %d out of range, %d points, %.2f s, %.0f records/s\n",
		stats.Files, stats.Records, stats.Malformed, stats.OutOfRange, stats.Points, secs, float64(stats.Records)/max(secs, 1e-9))
	return errors.Join(bfErr, errors.Join(drainErrs...), reportSinks(stderr, out.deliveries))
}

// reportSinks prints what each sink did with the backfill's points and
// returns an error when any point was not written: a backfill that
// InfluxDB refused must not look like a success.
func reportSinks(w io.Writer, ds []*engine.Delivery) error {
	var errs []error
	for _, d := range ds {
		c := d.Counts()
		name := strings.TrimPrefix(d.Component(), "sink_")
		fmt.Fprintf(w, "backfill: sink %s: %d points written, %d refused, %d dead-lettered, %d dropped, %d left queued\n",
			name, c.Written, c.Refused, c.DeadLettered, c.Dropped, c.Queued)
		if lost := c.Refused + c.DeadLettered + c.Dropped + c.Queued; lost > 0 {
			errs = append(errs, fmt.Errorf("sink %s did not take %d of the points", name, lost))
		}
	}
	return errors.Join(errs...)
}

// waitForRoom blocks while any delivery holds more than high points (0: until
// all are empty), or until ctx ends.
func waitForRoom(ctx context.Context, ds []*engine.Delivery, high int) {
	for {
		full := false
		for _, d := range ds {
			if d.Queued() > high {
				full = true
			}
		}
		if !full || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
