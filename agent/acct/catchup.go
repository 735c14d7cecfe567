package acct

import (
	"context"
	"time"
)

// How the tailer reads the files its fileset found: live (each to its end),
// a backlog (side by side, through the windowReader Backfill uses too), a
// replay (up to a cut's offsets), a gone file (drained), and the files of a
// very first start with StartAt "end" (skipped).

const (
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
			if err := t.readToEnd(e, false); err != nil {
				fail(err)
			}
		}
		return len(errs) == 0, errs
	}
	w := windowReader{
		iv: t.agg.iv,
		read: func(i int, until int64) (bool, int64, error) {
			e := files[i]
			stopped, next, err := t.readUntil(e, until)
			if err != nil {
				fail(err)
			}
			if stopped {
				// The first unread record dates the unread data (see noteLag).
				e.lagFrom = min(next, now) * 1000
			}
			return stopped, next, err
		},
		windowDone: func(start, _ int64) {
			t.updateStats(time.Unix(now, 0))
			// One interval of slack for records slightly out of order across
			// files; never past what the clock would close once caught up.
			if err := t.closeAndEmit(min(start-t.agg.iv, wall), nil); err != nil {
				// The checkpoint write failed: the batch went out all the same
				// and the next cut writes it again, as for boundOpen.
				t.errLog.log("accounting checkpoint write failed", "err", err)
			}
		},
	}
	if err := w.run(ctx, len(files)); err != nil {
		return false, append(errs, err)
	}
	return len(errs) == 0, errs
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

// readToEnd reads a file from its offset to its last complete line; final
// says the file will never grow again. A file with nothing new is not
// opened.
func (t *Tailer) readToEnd(e *fileEntry, final bool) error {
	if e.f == nil && e.offset >= e.size && !final {
		return nil
	}
	f, err := t.files.openEntry(e)
	if err != nil {
		return err
	}
	return t.parser.readAll(f, &e.fileCursor, final, t.boundOpen)
}

// readToOffset reads a file up to exactly the offset a journaled cut
// recorded, a record boundary.
func (t *Tailer) readToOffset(e *fileEntry, offset int64) error {
	f, err := t.files.openEntry(e)
	if err != nil {
		return err
	}
	return t.parser.readTo(f, &e.fileCursor, offset)
}

// readUntil reads a live file like readToEnd, but stops before its first
// record logged at or after until and returns that record's time (stopped =
// false: the file was read to its last complete line). The offset it stops
// at is that record's start, a record boundary, so a cut made there is
// replayed exactly by reading up to it.
func (t *Tailer) readUntil(e *fileEntry, until int64) (stopped bool, next int64, err error) {
	if e.f == nil && e.offset >= e.size {
		return false, 0, nil
	}
	f, err := t.files.openEntry(e)
	if err != nil {
		return false, 0, err
	}
	return t.parser.readUntil(f, &e.fileCursor, until, false, t.boundOpen)
}

// readMissing handles a known file the scan did not find: gone for good
// (see fileset.absent) it is drained through the descriptor still open and
// forgotten; else it is read as usual while it is away.
func (t *Tailer) readMissing(e *fileEntry) error {
	if !t.files.absent(e) {
		if e.f == nil {
			return nil
		}
		return t.readToEnd(e, false)
	}
	if e.f != nil {
		if err := t.readToEnd(e, true); err != nil {
			return err
		}
	}
	t.files.forget(e)
	return nil
}

// skipExisting moves a file found at the very first start to its end, as
// StartAt "end" asks, still following its header rows so that the records
// appended later are read with the right columns.
func (t *Tailer) skipExisting(e *fileEntry) {
	p := t.parser
	lines, bad, read := p.lines, p.malformed, p.bytesRead
	p.discard = true
	err := p.readAll(e.f, &e.fileCursor, false, nil)
	p.discard = false
	p.lines, p.malformed, p.bytesRead = lines, bad, read
	if err != nil {
		t.errLog.log("skipping existing accounting file failed", "file", e.path, "err", err)
	}
}
