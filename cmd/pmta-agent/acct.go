package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/sinks/stdout"
)

// Backfill holds about backfillHigh points per sink in memory: the reader
// waits for the sinks instead of dropping, so memory stays flat however large
// the files are. The buffers themselves are unbounded (one interval's points
// may go over backfillHigh), so nothing is ever dropped.
const backfillHigh = 5_000

// defaultBackfillStall is how long a backfill waits on a sink that takes
// nothing (a bucket that does not exist answers 404 for ever): several
// attempts at the longest back-off, long enough for a server to restart.
const defaultBackfillStall = 5 * time.Minute

// cmdBackfill aggregates whole accounting files into the configured sinks
// (without -config: line protocol on stdout).
func cmdBackfill(ctx context.Context, args []string, out, stderr io.Writer) error {
	fs := newFlagSet("backfill", stderr)
	path := fs.String("config", "", "configuration file (YAML); without it, line protocol goes to stdout")
	interval := fs.Duration("interval", 0, "aggregation interval (default: acct.interval of the configuration, 10s)")
	quiet := fs.Bool("quiet", false, "no progress line")
	stall := fs.Duration("stall", defaultBackfillStall, "give up when a sink has taken none of its waiting points for this long (0: wait for ever)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return usageError{errors.New("name at least one accounting file")}
	}
	if *stall < 0 {
		return usageError{fmt.Errorf("-stall is %s; want 0 (wait for ever) or more", *stall)}
	}
	var cfg config.Config
	var err error
	if *path == "" {
		cfg, err = config.Load("", os.Environ())
		cfg.Sinks = config.Sinks{Stdout: config.Stdout{Config: stdout.Config{Enabled: true}, Buffer: engine.MemoryBuffer()}}
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
	// A backfill reads files, not the live sources, and can be run again
	// from them: its points wait in memory, with back-pressure (feedSinks).
	log := newLogger(cfg, stderr)
	applyMemoryLimit(cfg)
	showProgress := !*quiet && isTerminal(stderr)
	progress := func(s acct.BackfillStats) {
		if showProgress {
			fmt.Fprintf(stderr, "\r%d files, %d records, %d malformed, %d points, %.0f records/s   ",
				s.Files, s.Records, s.Malformed, s.Points, float64(s.Records)/max(s.Elapsed.Seconds(), 1e-9))
		}
	}
	var stats acct.BackfillStats
	return feedSinks(ctx, cfg, false, "backfill", engine.FeedOptions{High: backfillHigh, Stall: *stall}, out, stderr, log,
		func(ctx context.Context, b *built, emit func(agent.Batch)) error {
			var err error
			stats, err = acct.Backfill(ctx, files, acct.BackfillOptions{Config: cfg.Acct, Logger: log}, b.isp, emit, progress)
			return err
		},
		func(w io.Writer) {
			if showProgress {
				fmt.Fprintln(w)
			}
			secs := stats.Elapsed.Seconds()
			fmt.Fprintf(w, "backfill: %d files, %d records, %d malformed, %d out of range, %d points, %.2f s, %.0f records/s\n",
				stats.Files, stats.Records, stats.Malformed, stats.OutOfRange, stats.Points, secs, float64(stats.Records)/max(secs, 1e-9))
		})
}

// reportSinks prints what each sink did with the points of a backfill or a
// `once -sinks` (what prefixes each line) and returns an error when any
// point was not written: a round that InfluxDB refused must not look like
// a success.
func reportSinks(w io.Writer, what string, ds []*engine.Delivery) error {
	var errs []error
	for _, d := range ds {
		c := d.Counts()
		name := strings.TrimPrefix(d.Component(), "sink_")
		fmt.Fprintf(w, "%s: sink %s: %d points written, %d refused, %d dead-lettered, %d dropped, %d left queued\n",
			what, name, c.Written, c.Refused, c.DeadLettered, c.Dropped, c.Queued)
		if lost := c.Refused + c.DeadLettered + c.Dropped + c.Queued; lost > 0 {
			errs = append(errs, fmt.Errorf("sink %s did not take %d of the points", name, lost))
		}
	}
	return errors.Join(errs...)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
