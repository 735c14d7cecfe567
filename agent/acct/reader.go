package acct

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"
)

// maxQuotedLines bounds the line breaks inside one quoted field. A real
// multi-line reply has a handful; an unterminated quote would otherwise hold
// a live file up until MaxLineBytes more bytes arrived.
const maxQuotedLines = 64

// noLimit and noUntil switch off readFile's byte and time limits.
const (
	noLimit = int64(-1)
	noUntil = int64(math.MaxInt64)
)

// fileCursor is where reading one file stands: the byte offset of the next
// record, the columns in force there, and whether a broken over-long record
// is being skipped up to its line end.
type fileCursor struct {
	name     string // for log lines
	offset   int64
	hdr      *header
	skipping bool
	// last is the timeLogged of the last record counted from the file, 0
	// before the first; it is not saved, only a hint of how far behind the
	// file is.
	last int64
}

// lineParser turns file bytes into aggregated records. The tailer and the
// backfill each own one; its buffers are reused for every file.
type lineParser struct {
	sc       *scanner
	rec      record
	agg      *aggregator
	buf      []byte
	maxBytes int
	// discard makes readFile follow header rows but count no record: how the
	// tailer skips what is already in the files at its very first start.
	discard bool

	lines     int64 // records scanned, header rows and bad lines included
	malformed int64
	bytesRead int64 // bytes consumed (a pending partial line is not)
	badLog    *rateLog
}

func newLineParser(agg *aggregator, maxBytes int, badLog *rateLog) *lineParser {
	return &lineParser{
		sc:       newScanner(maxBytes, maxQuotedLines),
		agg:      agg,
		buf:      make([]byte, min(256<<10, maxBytes)),
		maxBytes: maxBytes,
		badLog:   badLog,
	}
}

// readFile feeds the records of f from c.offset on to the aggregator, until
// the end of the file, until limit bytes (a record boundary) when limit is not
// noLimit, or until the first record logged at or after until, which is left
// unread and whose time is returned with stopped = true. final says no more
// bytes will ever be written to f, so a last line without a line end counts.
// afterChunk, if not nil, runs after each buffer's worth of records.
func (p *lineParser) readFile(f io.ReaderAt, c *fileCursor, limit int64, final bool, until int64, afterChunk func()) (stopped bool, next int64, err error) {
	for {
		want := len(p.buf)
		if limit != noLimit {
			if c.offset >= limit {
				return false, 0, nil
			}
			want = int(min(int64(want), limit-c.offset))
		}
		n, rerr := f.ReadAt(p.buf[:want], c.offset)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return false, 0, fmt.Errorf("read %s at %d: %w", c.name, c.offset, rerr)
		}
		if n == 0 {
			return false, 0, nil
		}
		atLimit := limit != noLimit && c.offset+int64(n) == limit
		short := n < want
		used, stop, nextTS := p.consume(c, p.buf[:n], (final && short) || atLimit, until)
		c.offset += int64(used)
		p.bytesRead += int64(used)
		if afterChunk != nil {
			afterChunk()
		}
		switch {
		case stop:
			return true, nextTS, nil
		case short || atLimit:
			return false, 0, nil
		case used == 0:
			// One record is bigger than the buffer: grow it. The scanner
			// reports records over maxBytes itself, so this ends.
			if len(p.buf) >= p.maxBytes {
				return false, 0, fmt.Errorf("read %s at %d: no progress with a full buffer", c.name, c.offset)
			}
			p.buf = make([]byte, min(2*len(p.buf), p.maxBytes))
		}
	}
}

// consume handles the complete records at the start of data and returns how
// many bytes they took.
func (p *lineParser) consume(c *fileCursor, data []byte, atEOF bool, until int64) (used int, stopped bool, next int64) {
	pos := 0
	if c.skipping {
		n, ok := resync(data)
		if !ok {
			return n, false, 0
		}
		pos, c.skipping = n, false
	}
	for pos < len(data) {
		n, st := p.sc.scan(data[pos:], atEOF)
		switch st {
		case scanNeedMore:
			return pos, false, 0
		case scanTooLong:
			p.lines++
			p.bad(c, pos, errTooLong)
			skip, ok := resync(data[pos:])
			pos += skip
			if !ok {
				c.skipping = true
				return pos, false, 0
			}
			continue
		case scanBroken:
			p.lines++
			p.bad(c, pos, errBroken)
			pos += n
			continue
		}
		fields := p.sc.fields
		switch {
		case isHeaderRow(fields):
			c.hdr = headerFromFields(fields)
		case len(fields) == 1 && len(trimSpace(fields[0])) == 0:
			// A blank line carries nothing; it is neither a record nor bad.
		case p.discard:
		default:
			if err := parseRecord(c.hdr, fields, &p.rec); err != nil {
				p.bad(c, pos, err)
				break
			}
			if p.rec.timeLogged >= until {
				return pos, true, p.rec.timeLogged
			}
			p.agg.add(&p.rec)
			c.last = p.rec.timeLogged
		}
		p.lines++
		pos += n
	}
	return pos, false, 0
}

func (p *lineParser) bad(c *fileCursor, pos int, err error) {
	p.malformed++
	if p.badLog != nil {
		p.badLog.log("skipped malformed accounting line", "file", c.name, "offset", c.offset+int64(pos), "reason", err.Error())
	}
}

// rateLog logs at most once per period and says how many lines it held back,
// so that a file full of garbage does not flood the log. It is safe for
// concurrent use: batch Done callbacks log through it too.
type rateLog struct {
	mu         sync.Mutex
	logger     *slog.Logger
	loud       bool // log at Error, not Warn: the problem needs an operator
	period     time.Duration
	now        func() time.Time
	last       time.Time
	suppressed int64
}

func (r *rateLog) log(msg string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.period {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed_since_last", r.suppressed)
	}
	level := slog.LevelWarn
	if r.loud {
		level = slog.LevelError
	}
	r.logger.Log(context.Background(), level, msg, args...)
	r.last, r.suppressed = now, 0
}
