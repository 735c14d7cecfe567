package acct

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// BackfillOptions configures Backfill.
type BackfillOptions struct {
	// Config gives the aggregation: Interval, TopDiag, MaxLineBytes,
	// MaxClockSkew and Views, checked as Config.Validate checks them except that the
	// interval need not divide an hour (a backfill lines up with nothing);
	// zero fields take DefaultConfig's. Its other settings take no part: a backfill
	// reads the files it is given, whole, with no checkpoint, and takes
	// records of any age.
	Config Config
	// Lag is how far the data must have moved past an interval's end before
	// the interval closes; records more out of order than this are late
	// (default 1 min).
	Lag time.Duration
	// Logger receives the rate-limited malformed-line warnings; nil drops them.
	Logger *slog.Logger
}

// defaultBackfillLag is BackfillOptions.Lag's default, a setting of the
// backfill command alone.
const defaultBackfillLag = time.Minute

// config is the Config a backfill runs with: the aggregation settings of
// o.Config, the defaults for the rest, which only tailing uses.
func (o BackfillOptions) config() Config {
	c := DefaultConfig()
	c.Interval, c.TopDiag, c.MaxLineBytes, c.MaxClockSkew = o.Config.Interval, o.Config.TopDiag, o.Config.MaxLineBytes, o.Config.MaxClockSkew
	c.Views, c.Verdict = o.Config.Views, o.Config.Verdict
	return c.withDefaults()
}

// BackfillStats reports a backfill's progress and result.
type BackfillStats struct {
	Files     int   // files read to their end
	Records   int64 // records counted
	Malformed int64 // lines skipped as malformed
	// OutOfRange counts the records refused for their timeLogged: later
	// than the clock allows, or before 1990 or after 2200.
	OutOfRange int64
	Points     int64 // points emitted
	Elapsed    time.Duration
}

// backfillFile is one input file and where reading it stands.
type backfillFile struct {
	fileCursor
	f *os.File
}

// Backfill reads whole accounting files, with no checkpoint, and emits their
// pmta_acct and pmta_acct_diag points as intervals close. The files are read
// side by side in time order — a window at a time across every file that has
// records in it — so that acct and diag files of the same day, given in any
// order, aggregate as if read live, and memory holds only a few minutes of
// intervals however long the files are. progress, if not nil, is called about
// once a second. An unreadable file is reported in the error after the others
// have been read.
func Backfill(ctx context.Context, files []string, opts BackfillOptions, isp *agent.ISPMap,
	emit func(agent.Batch), progress func(BackfillStats)) (BackfillStats, error) {
	start := time.Now()
	cfg := opts.config()
	if opts.Lag == 0 {
		opts.Lag = defaultBackfillLag
	}
	var errs problems
	cfg.validateAggregation(&errs, false)
	if opts.Lag < 0 {
		errs = append(errs, fmt.Errorf("lag: (%s) must be 0 (the default) or more", opts.Lag))
	}
	if len(errs) > 0 {
		return BackfillStats{}, fmt.Errorf("backfill: %w", errors.Join(errs...))
	}
	if isp == nil || emit == nil {
		return BackfillStats{}, errors.New("backfill: nil ISP map or emit function")
	}
	if err := distinctFiles(files); err != nil {
		return BackfillStats{}, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	agg := newAggregator(cfg.Interval, cfg.TopDiag, isp, cfg.Views...)
	agg.fillFrom(opts.Config.SourceIPs, opts.Config.Pools)
	if v := cfg.Verdict; v.Enabled {
		// The verdicts over history too, where the interval allows them (a
		// backfill may use any interval: -interval 7s has no 1m steps).
		if verrs := v.Validate(cfg.Interval); len(verrs) == 0 {
			agg.verdicts = verdict.NewWindow(v)
		} else {
			logger.Warn("backfill: no pmta_verdict points", "err", errors.Join(verrs...))
		}
	}
	p := newLineParser(agg, cfg.MaxLineBytes, timeRange{now: time.Now, skew: int64(cfg.MaxClockSkew / time.Second)},
		logger, time.Now)
	var st BackfillStats
	stats := func() BackfillStats {
		st.Records, st.Malformed, st.OutOfRange, st.Elapsed = agg.records, p.malformed, p.outOfRangeTotal(), time.Since(start)
		return st
	}
	lastProgress := start
	tick := func() {
		if progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			progress(stats())
		}
	}
	send := func(pts []agent.Point) {
		agg.takeChanges() // history's verdict changes are in its points, not the log
		if len(pts) > 0 {
			st.Points += int64(len(pts))
			emit(agent.Batch{Source: "acct-backfill", Points: pts})
		}
	}

	var readErrs []error
	in := make([]*backfillFile, len(files))
	for i, name := range files {
		in[i] = &backfillFile{fileCursor: fileCursor{name: name}}
	}
	lag := int64(opts.Lag / time.Second)
	w := windowReader{
		iv: agg.iv,
		read: func(i int, until int64) (bool, int64, error) {
			stopped, next, err := in[i].advance(p, until, tick)
			if err != nil {
				readErrs = append(readErrs, err)
			} else if !stopped {
				st.Files++
			}
			return stopped, next, err
		},
		windowDone: func(_, until int64) {
			agg.closeEach(until-lag, send)
			tick()
		},
	}
	if err := w.run(ctx, len(in)); err != nil {
		closeAll(in)
		return stats(), fmt.Errorf("backfill: %w", err)
	}
	if n := len(agg.open); n > 0 {
		agg.closeEach(agg.open[n-1].start+agg.iv, send)
	}
	out := stats()
	if progress != nil {
		progress(out)
	}
	return out, errors.Join(readErrs...)
}

// advance reads bf up to its first record logged at or after until, and
// closes it at its end (stopped = false). A read error ends the file: it is
// reported and the backfill goes on with the others.
func (bf *backfillFile) advance(p *lineParser, until int64, tick func()) (stopped bool, next int64, err error) {
	if bf.f == nil {
		f, err := os.Open(bf.name)
		if err != nil {
			return false, 0, fmt.Errorf("backfill: %w", err)
		}
		bf.f = f
	}
	stopped, next, err = p.readUntil(bf.f, &bf.fileCursor, until, true, tick)
	if err != nil || !stopped {
		_ = bf.f.Close()
		bf.f = nil
		if err != nil {
			return false, 0, fmt.Errorf("backfill: %w", err)
		}
		return false, 0, nil
	}
	if until == math.MinInt64 {
		// Only looking for where the file starts: do not hold its descriptor
		// until the data reaches it.
		_ = bf.f.Close()
		bf.f = nil
	}
	return true, next, nil
}

// distinctFiles refuses a file given twice — under the same name, another
// name, a symbolic or a hard link — whose records would count twice.
func distinctFiles(files []string) error {
	seen := make(map[[2]uint64]string, len(files))
	var errs []error
	for _, name := range files {
		fi, err := os.Stat(name)
		if err != nil {
			continue // reported when it is read
		}
		dev, ino, _, ok := fileID(fi)
		if !ok {
			continue
		}
		id := [2]uint64{dev, ino}
		if first, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("backfill: %s is the same file as %s: its records would count twice", name, first))
			continue
		}
		seen[id] = name
	}
	return errors.Join(errs...)
}

func closeAll(in []*backfillFile) {
	for _, bf := range in {
		if bf.f != nil {
			_ = bf.f.Close()
			bf.f = nil
		}
	}
}
