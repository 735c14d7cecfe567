package acct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

const (
	// maxQuotedLines bounds the line breaks inside the quoted fields of one
	// record. A real multi-line SMTP reply has a handful; a record closed
	// properly after more is malformed, and skipped whole.
	maxQuotedLines = 64
	// strayWait is how long, in seconds, a quote may stay open over lines
	// that are complete records of their own before it is taken for one
	// never closed. PowerMTA writes a record at once, so a real multi-line
	// reply is complete long before; a remote server's reply that holds a
	// line shaped like a record is complete and closed, and is never
	// taken apart.
	strayWait = 5
	// staleQuote is how long, in seconds, a quote may stay open at all: a
	// file ending in a quote never closed (a rotated one, or PowerMTA
	// stopped in the middle of a record) counts that line as malformed.
	staleQuote = 300
)

// noUntil is consume's until when no time stops it: no plausible timeLogged
// reaches it (see timeRange).
const noUntil = int64(math.MaxInt64)

// fileCursor is where reading one file stands: the byte offset of the next
// record, the columns in force there, and whether a broken over-long record
// is being skipped up to its line end.
type fileCursor struct {
	name     string // for log lines
	offset   int64
	hdr      *header
	skipping bool
	// inNUL says the bytes read last ended inside a run of NULs, counted
	// already as one malformed line: the NULs that follow belong to it. Not saved: after a restart in the middle
	// of such a run, the rest of it counts as one more malformed line.
	inNUL bool
	// last is the timeLogged of the last record counted from the file, 0
	// before the first; it is not saved, only a hint of how far behind the
	// file is.
	last int64
	// eof is where the file ended when it was last read to its end: the
	// bytes from offset to eof are a line not finished yet, seen and not
	// unread (see noteLag).
	eof int64
	// pendOff and pendSince: the offset of a record whose quote is still
	// open, and since when (Unix seconds) it has been (see strayQuote).
	pendOff, pendSince int64
}

// lineParser turns file bytes into aggregated records. The tailer and the
// backfill each own one; its buffers are reused for every file.
type lineParser struct {
	sc       *scanner
	peek     *scanner // looks at the line after a suspect multi-line record
	peekRec  record
	rec      record
	agg      *aggregator
	buf      []byte
	maxBytes int
	times    timeRange
	// discard makes reading follow header rows but count no record: how the
	// tailer skips what is already in the files at its very first start.
	discard bool

	lines      int64 // records scanned, header rows and bad lines included
	malformed  int64
	outOfRange [numRangeReasons]int64 // records refused for their timeLogged
	bytesRead  int64                  // bytes consumed (a pending partial line is not)
	// badLog and rangeLog report malformed lines and implausible times,
	// each with its own budget so that one kind does not silence the
	// other; nil (benchmarks) logs nothing.
	badLog   *limitedLog
	rangeLog *limitedLog
}

// badLineEvery rate-limits the reports of malformed lines and of implausible
// times.
const badLineEvery = 10 * time.Second

// newLineParser returns a parser feeding agg. log receives the rate-limited
// reports of bad lines, read from the clock now; a nil log drops them.
func newLineParser(agg *aggregator, maxBytes int, times timeRange, log *slog.Logger, now func() time.Time) *lineParser {
	p := &lineParser{
		sc:       newScanner(maxBytes),
		peek:     newScanner(maxBytes),
		agg:      agg,
		buf:      make([]byte, min(256<<10, maxBytes)),
		maxBytes: maxBytes,
		times:    times,
	}
	if log != nil {
		p.badLog = newLimitedLog(log, slog.LevelWarn, badLineEvery, now)
		p.rangeLog = newLimitedLog(log, slog.LevelWarn, badLineEvery, now)
	}
	return p
}

// outOfRangeTotal is the records refused for their timeLogged.
func (p *lineParser) outOfRangeTotal() int64 {
	var n int64
	for _, v := range p.outOfRange {
		n += v
	}
	return n
}

// readAll feeds the records of f from c.offset on to the aggregator, up to
// the last complete line. final says no more bytes will ever be written to
// f, so a last line without a line end counts. afterChunk, if not nil, runs
// after each buffer's worth of records.
func (p *lineParser) readAll(f io.ReaderAt, c *fileCursor, final bool, afterChunk func()) error {
	_, _, err := p.read(f, c, readSpan{until: noUntil, final: final, afterChunk: afterChunk})
	return err
}

// readTo feeds the records of f from c.offset up to the byte offset end, a
// record boundary (where a cut left the file): a replay reads exactly the
// records the cut had read.
func (p *lineParser) readTo(f io.ReaderAt, c *fileCursor, end int64) error {
	_, _, err := p.read(f, c, readSpan{toOffset: true, offset: end, until: noUntil})
	return err
}

// readUntil feeds the records of f from c.offset on until the first one
// logged at or after until, which is left unread and whose time is returned
// with stopped = true; stopped = false means f was read to its last complete
// line (final and afterChunk as for readAll). The offset it stops at is that
// record's start, a record boundary.
func (p *lineParser) readUntil(f io.ReaderAt, c *fileCursor, until int64, final bool, afterChunk func()) (stopped bool, next int64, err error) {
	return p.read(f, c, readSpan{until: until, final: final, afterChunk: afterChunk})
}

// readSpan says where read ends besides the end of the file.
type readSpan struct {
	toOffset   bool  // stop at offset, a record boundary
	offset     int64 // with toOffset: where to stop
	until      int64 // stop before the first record logged at or after it; noUntil: never
	final      bool  // the file never grows again
	afterChunk func()
}

// read is the loop behind readAll, readTo and readUntil.
func (p *lineParser) read(f io.ReaderAt, c *fileCursor, s readSpan) (stopped bool, next int64, err error) {
	for {
		want := len(p.buf)
		if s.toOffset {
			if c.offset >= s.offset {
				return false, 0, nil
			}
			want = int(min(int64(want), s.offset-c.offset))
		}
		n, rerr := f.ReadAt(p.buf[:want], c.offset)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return false, 0, fmt.Errorf("read %s at %d: %w", c.name, c.offset, rerr)
		}
		if n == 0 {
			return false, 0, nil
		}
		atLimit := s.toOffset && c.offset+int64(n) == s.offset
		short := n < want
		if short {
			c.eof = c.offset + int64(n)
		}
		used, stop, nextTS := p.consume(c, p.buf[:n], (s.final && short) || atLimit, s.until)
		c.offset += int64(used)
		p.bytesRead += int64(used)
		if s.afterChunk != nil {
			s.afterChunk()
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

// nulRunEnd returns the end of the run of NUL bytes at data[from:].
func nulRunEnd(data []byte, from int) int {
	for from < len(data) && data[from] == 0 {
		from++
	}
	return from
}

// consume handles the complete records at the start of data and returns how
// many bytes they took.
//
// One broken line costs one record: a quote never closed is found (see
// strayQuote) and reading resumes at the next line start; a run of NUL
// bytes (what a crash can leave in a file) is skipped as one malformed line.
func (p *lineParser) consume(c *fileCursor, data []byte, atEOF bool, until int64) (used int, stopped bool, next int64) {
	pos := 0
	if c.skipping {
		n, ok := resync(data)
		if !ok {
			return n, false, 0
		}
		pos, c.skipping = n, false
	}
	if c.inNUL {
		pos = nulRunEnd(data, pos)
		if pos == len(data) {
			return pos, false, 0
		}
		c.inNUL = false
	}
	now := p.times.nowUnix()
	for pos < len(data) {
		if data[pos] == 0 {
			// The run is one malformed line however long: counted now,
			// and if it reaches the end of what was read, the NULs that
			// follow are skipped as they come (the buffer never grows
			// for NULs).
			end := nulRunEnd(data, pos)
			p.lines++
			p.bad(c, pos, errNUL)
			pos = end
			if end == len(data) && !atEOF {
				c.inNUL = true
			}
			continue
		}
		n, st := p.sc.scan(data[pos:], atEOF)
		if p.sc.multiline && (st == scanRecord || st == scanNeedMore) {
			switch p.strayQuote(c, data[pos:], pos, n, st, atEOF, now) {
			case strayLine:
				p.lines++
				p.bad(c, pos, errStrayQuote)
				skip, _ := resync(data[pos:])
				pos += skip
				continue
			case strayRecord:
				p.lines++
				p.bad(c, pos, errQuotedLines)
				pos += n
				continue
			}
		}
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
			// An unclosed quote at the end of a finished file: the line it
			// starts on is malformed, the lines after it are read.
			p.lines++
			p.bad(c, pos, errBroken)
			skip, _ := resync(data[pos:])
			pos += skip
			continue
		}
		fields := p.sc.fields
		switch {
		case isHeaderRow(fields):
			if h, err := headerFromFields(fields); err != nil {
				p.bad(c, pos, err)
			} else {
				c.hdr = h
			}
		case len(fields) == 1 && len(trimSpace(fields[0])) == 0:
			// A blank line carries nothing; it is neither a record nor bad.
		case p.discard:
		default:
			if err := parseRecord(c.hdr, fields, &p.rec); err != nil {
				p.bad(c, pos, err)
				break
			}
			if r := p.times.check(p.rec.timeLogged, now); r != inRange {
				// Never aggregated: an implausible time must not move
				// the intervals, nor stop a windowed read.
				p.outOfRange[r]++
				if p.rangeLog != nil {
					p.rangeLog.log("accounting record with an implausible timeLogged; counted, not aggregated",
						"file", c.name, "offset", c.offset+int64(pos), "reason", r.String(),
						"time_logged", p.rec.timeLogged)
				}
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

// strayVerdict is what strayQuote makes of a record with a quoted field
// over several lines.
type strayVerdict uint8

const (
	// strayNo: a record (or one still being written): read it as it is.
	strayNo strayVerdict = iota
	// strayLine: a quote never closed; its first line is malformed and
	// reading resumes at the next line start.
	strayLine
	// strayRecord: closed properly, but over more lines than any SMTP
	// reply: malformed, skipped whole.
	strayRecord
)

// strayQuote judges a record (st == scanRecord, n bytes) or a pending one
// (scanNeedMore) at data whose quoted fields run over line ends: a real
// multi-line SMTP reply, or a quote that was never closed and swallows the
// records after it.
//
// A complete record is a stray quote when it does not read as a record (a
// wrong field count, text after a closing quote); else it is taken, however
// its lines look inside the quotes, which a remote server writes. A pending
// one is when, open for strayWait seconds, it runs over a line that is a
// complete record (or a header row) of its own.
func (p *lineParser) strayQuote(c *fileCursor, data []byte, pos, n int, st scanStatus, atEOF bool, now int64) strayVerdict {
	if st == scanRecord {
		switch {
		case isHeaderRow(p.sc.fields):
			return strayNo
		case p.sc.lenient || c.hdr == nil || len(p.sc.fields) != len(c.hdr.cols):
			return strayLine
		case p.sc.lines > maxQuotedLines:
			return strayRecord
		}
		return strayNo
	}
	if off := c.offset + int64(pos); c.pendOff != off || c.pendSince == 0 {
		c.pendOff, c.pendSince = off, now
	}
	switch wait := now - c.pendSince; {
	case wait < strayWait:
		return strayNo
	case wait >= staleQuote:
		// Open for minutes with nothing closing it: the last record of a
		// file PowerMTA no longer writes. Its line is malformed.
		return strayLine
	}
	for i, from := 0, 0; i <= maxQuotedLines; i++ {
		nl := bytes.IndexByte(data[from:], '\n')
		if nl < 0 {
			return strayNo
		}
		from += nl + 1
		m, pst := p.peek.scan(data[from:], atEOF)
		switch {
		case pst == scanNeedMore:
			return strayNo // that line is not complete yet
		case pst != scanRecord || m == 0:
		case isHeaderRow(p.peek.fields):
			return strayLine // a quote never runs over a header row
		case !p.peek.multiline && parseRecord(c.hdr, p.peek.fields, &p.peekRec) == nil:
			return strayLine
		}
	}
	return strayLine // open over more lines than any SMTP reply
}

func (p *lineParser) bad(c *fileCursor, pos int, err error) {
	p.malformed++
	if p.badLog != nil {
		p.badLog.log("skipped malformed accounting line", "file", c.name, "offset", c.offset+int64(pos), "reason", err.Error())
	}
}
