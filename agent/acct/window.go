package acct

import (
	"context"
	"math"
)

// readWindow is how much timeLogged, in seconds, a windowed read takes from
// every file before the intervals behind it may close (at least one
// interval: a longer interval makes the window that interval). The
// intervals of about two windows are open at a time, and a catch-up writes
// them all into the checkpoint after each window: 10 s keeps that small for
// a server with thousands of tag sets per interval, at the speed of longer
// windows (testdata/bench/scale.sh: 60 s windows held 76 MiB on a file with
// 2,300 tag sets per interval, 10 s 29 MiB). The price: a catch-up writes a
// checkpoint (two fsyncs) per 10 s of log time read, 8,640 for a day of
// backlog; and records out of order by more than about 20 s within a file
// read in a catch-up count as late (live tailing allows the grace, 0.5 s).
const readWindow = 10

// windowReader reads several files side by side in windows of timeLogged:
// a window at a time across every file that has records in it, oldest
// first. Both the tailer's catch-up of a backlog and Backfill read this way,
// so that acct and diag files holding records for the same times — read one
// after the other, the first would fill every interval before the second's
// records for them came — aggregate as if read live, and only the intervals
// of about one window are open at any time.
//
// It knows nothing of descriptors, checkpoints or points: read and
// windowDone, which the catch-up and Backfill provide, do.
type windowReader struct {
	// iv is the aggregation interval in seconds; windows start on its
	// boundaries.
	iv int64
	// read reads file i up to its first record logged at or after until,
	// leaves that record unread and returns its time (stopped = true).
	// stopped = false (the end of the file) or an error ends the file for
	// this run. The first call for each file has until math.MinInt64: it
	// only finds where the file's records start.
	read func(i int, until int64) (stopped bool, next int64, err error)
	// windowDone runs after each window, which read every file up to until
	// and whose oldest interval starts at start: the caller closes the
	// intervals the window completed.
	windowDone func(start, until int64)
}

// run reads n files until each has ended or ctx is done, and returns ctx's
// error in that case. Errors of read are the caller's to keep.
func (w windowReader) run(ctx context.Context, n int) error {
	type cursor struct {
		next int64 // timeLogged of the first unread record
		done bool  // at the end of the file, or failed
	}
	cur := make([]cursor, n)
	advance := func(i int, until int64) {
		stopped, next, err := w.read(i, until)
		cur[i] = cursor{next: next, done: err != nil || !stopped}
	}
	for i := range cur {
		advance(i, math.MinInt64)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		lo, active := int64(math.MaxInt64), false
		for _, c := range cur {
			if !c.done {
				lo, active = min(lo, c.next), true
			}
		}
		if !active {
			return nil
		}
		start := floorDiv(lo, w.iv) * w.iv
		until := start + max(readWindow, w.iv)
		for i, c := range cur {
			if !c.done && c.next < until {
				advance(i, until)
			}
		}
		w.windowDone(start, until)
	}
}
