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
)

// BackfillOptions configures Backfill. Zero values take the tailer's defaults.
type BackfillOptions struct {
	// Interval is the aggregation window (default 10 s).
	Interval time.Duration
	// TopDiag is how many diag patterns per (type, isp) and interval are kept.
	TopDiag int
	// MaxLineBytes bounds one record (default 1 MiB).
	MaxLineBytes int
	// Lag is how far the data must have moved past an interval's end before
	// the interval closes; records more out of order than this are late
	// (default 1 min).
	Lag time.Duration
	// MaxClockSkew is how far past the clock a record may be (default 5
	// min): later ones, and those before 1990 or after 2200, are counted as
	// out of range. A backfill takes records of any age.
	MaxClockSkew time.Duration
	// Logger receives the rate-limited malformed-line warnings; nil drops them.
	Logger *slog.Logger
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
	f    *os.File
	next int64 // timeLogged of the first unread record
	done bool
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
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.TopDiag == 0 {
		opts.TopDiag = DefaultTopDiag
	}
	if opts.MaxLineBytes == 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.Lag == 0 {
		opts.Lag = time.Minute
	}
	if opts.MaxClockSkew == 0 {
		opts.MaxClockSkew = DefaultMaxClockSkew
	}
	if opts.Interval < time.Second || opts.Interval%time.Second != 0 || opts.Lag < 0 || opts.MaxLineBytes < 1024 {
		return BackfillStats{}, fmt.Errorf("backfill: interval %s must be whole seconds, lag %s >= 0, max line bytes %d >= 1024",
			opts.Interval, opts.Lag, opts.MaxLineBytes)
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
	agg := newAggregator(opts.Interval, opts.TopDiag, isp)
	p := newLineParser(agg, opts.MaxLineBytes, timeRange{now: time.Now, skew: int64(opts.MaxClockSkew / time.Second)},
		&rateLog{logger: logger, period: 10 * time.Second, now: time.Now})
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
		if len(pts) > 0 {
			st.Points += int64(len(pts))
			emit(agent.Batch{Source: "acct-backfill", Points: pts})
		}
	}

	var errs []error
	in := make([]*backfillFile, 0, len(files))
	for _, name := range files {
		bf := &backfillFile{fileCursor: fileCursor{name: name}}
		if err := bf.advance(p, math.MinInt64, tick); err != nil {
			errs = append(errs, err)
			continue
		}
		in = append(in, bf)
		st.Files += boolInt(bf.done)
	}
	window := max(int64(opts.Interval/time.Second), 60)
	lag := int64(opts.Lag / time.Second)
	for {
		if err := ctx.Err(); err != nil {
			closeAll(in)
			return stats(), fmt.Errorf("backfill: %w", err)
		}
		lo, active := int64(math.MaxInt64), false
		for _, bf := range in {
			if !bf.done {
				lo, active = min(lo, bf.next), true
			}
		}
		if !active {
			break
		}
		until := floorDiv(lo, agg.iv)*agg.iv + window
		for _, bf := range in {
			if bf.done || bf.next >= until {
				continue
			}
			if err := bf.advance(p, until, tick); err != nil {
				errs = append(errs, err)
				continue
			}
			st.Files += boolInt(bf.done)
		}
		pts, _ := agg.closeBefore(until - lag)
		send(pts)
		tick()
	}
	pts, _ := agg.closeAll()
	send(pts)
	out := stats()
	if progress != nil {
		progress(out)
	}
	return out, errors.Join(errs...)
}

// advance reads bf up to its first record logged at or after until, and
// closes it at its end. A read error ends the file: it is reported and the
// backfill goes on with the others.
func (bf *backfillFile) advance(p *lineParser, until int64, tick func()) error {
	if bf.f == nil {
		f, err := os.Open(bf.name)
		if err != nil {
			bf.done = true
			return fmt.Errorf("backfill: %w", err)
		}
		bf.f = f
	}
	stopped, next, err := p.readFile(bf.f, &bf.fileCursor, noLimit, true, until, tick)
	if err != nil || !stopped {
		bf.done = true
		_ = bf.f.Close()
		bf.f = nil
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		return nil
	}
	bf.next = next
	if until == math.MinInt64 {
		// Only looking for where the file starts: do not hold its descriptor
		// until the data reaches it.
		_ = bf.f.Close()
		bf.f = nil
	}
	return nil
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
