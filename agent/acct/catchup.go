package acct

import (
	"context"
	"math"
	"time"
)

const (
	// catchUpWindow is how much timeLogged a catch-up reads from every file
	// before the intervals behind the slowest file are closed, in seconds.
	catchUpWindow = 60
	// backlogBytes is the unread total above which the files are read side
	// by side: more than one read buffer's worth is more than a poll's.
	backlogBytes = 256 << 10
	// backlogAge is how far, in seconds, a file's last record read may lag
	// the clock before its unread records count as a backlog. Up to it, one
	// file read to its end opens a few dozen intervals at most.
	backlogAge = 300
)

// readSeen reads the files the scan found up to their last complete line and
// reports whether it got there: not after a read error (counted in the
// read_errors stat) or a cancelled ctx.
//
// Live, each file is read once to its end, as only a poll's worth of records
// waits. With a backlog (the agent was stopped, or a file appears with hours
// in it) the files are read side by side in windows of timeLogged, as Backfill
// does, and the intervals behind the slowest file are closed after each
// window. Read one after the other, the first file would fill every interval
// of the backlog and boundOpen would close them before the next file's
// records for the same times were read, lumping those into one late interval.
//
// now is the clock in Unix seconds; wall the boundary the caught-up close
// will use, which the closes of a catch-up never pass.
func (t *Tailer) readSeen(ctx context.Context, files []*fileEntry, now, wall int64) (caughtUp bool, errs []error) {
	fail := func(err error) {
		t.st.readErrors.Add(1)
		errs = append(errs, err)
	}
	if !t.backlog(files, now) {
		for _, e := range files {
			if err := t.readEntry(e, noLimit, false); err != nil {
				fail(err)
			}
		}
		return len(errs) == 0, errs
	}
	type cursor struct {
		e    *fileEntry
		next int64 // timeLogged of the first unread record
		done bool  // at the end of the file, or failed
	}
	cur := make([]*cursor, 0, len(files))
	read := func(c *cursor, until int64) {
		stopped, next, err := t.readEntryUntil(c.e, until)
		if err != nil {
			fail(err)
		}
		c.next, c.done = next, err != nil || !stopped
		if stopped {
			// The first unread record dates the unread data (see noteLag).
			c.e.lagFrom = min(next, now) * 1000
		}
	}
	for _, e := range files {
		c := &cursor{e: e}
		// Only find where the file stands: the first record stops it.
		read(c, math.MinInt64)
		cur = append(cur, c)
	}
	iv := t.agg.iv
	for {
		if err := ctx.Err(); err != nil {
			return false, append(errs, err)
		}
		lo, active := int64(math.MaxInt64), false
		for _, c := range cur {
			if !c.done {
				lo, active = min(lo, c.next), true
			}
		}
		if !active {
			return len(errs) == 0, errs
		}
		start := floorDiv(lo, iv) * iv
		until := start + max(catchUpWindow, iv)
		for _, c := range cur {
			if !c.done && c.next < until {
				read(c, until)
			}
		}
		t.updateStats(time.Unix(now, 0))
		// One interval of slack for records slightly out of order across
		// files; never past what the clock would close once caught up.
		if err := t.closeAndEmit(min(start-iv, wall), nil); err != nil {
			// The checkpoint write failed: the batch went out all the same
			// and the next cut writes it again, as for boundOpen.
			t.errLog.log("accounting checkpoint write failed", "err", err)
		}
	}
}

// backlog reports whether more waits in files than a live poll brings: many
// bytes, or records in a file whose last record read is more than backlogAge
// behind the clock or unknown (a new file, or the first read since a start).
// Reading side by side costs one more read per file, so it is kept to then.
func (t *Tailer) backlog(files []*fileEntry, now int64) bool {
	var unread int64
	for _, e := range files {
		n := e.size - e.offset
		if n <= 0 {
			continue
		}
		if e.last == 0 || e.last < now-backlogAge {
			return true
		}
		unread += n
	}
	return unread > backlogBytes
}
