package acct

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// scanStatus says what scan found at the start of a buffer.
type scanStatus uint8

const (
	// scanRecord: a complete record; its fields are in scanner.fields.
	scanRecord scanStatus = iota
	// scanNeedMore: the buffer ends inside a record that has no line end yet.
	// The caller must wait for more bytes and never parse what it has.
	scanNeedMore
	// scanTooLong: the record exceeds the byte limit. The caller skips it
	// with resync.
	scanTooLong
	// scanBroken: at the end of a finished file, a quoted field never closed.
	scanBroken
)

// scanner splits RFC 4180 records out of a byte buffer. It holds no I/O: the
// caller owns the buffer and the position; scan only reads. Field slices point
// into the caller's buffer (or, for fields with doubled quotes, into scratch),
// so they are valid until the buffer is changed or scan is called again.
type scanner struct {
	fields   [][]byte
	scratch  []byte
	maxBytes int // a record longer than this is malformed
	// lines counts the line breaks inside quoted fields of the record
	// scanned last (also of one that needs more bytes); multiline says there
	// is one, and lenient that text followed a closing quote. The caller
	// judges from them whether a quote was never closed (see strayQuote).
	lines     int
	multiline bool
	lenient   bool
}

func newScanner(maxBytes int) *scanner {
	return &scanner{
		fields:   make([][]byte, 0, 64),
		scratch:  make([]byte, 0, 4096),
		maxBytes: maxBytes,
	}
}

// scan reads one record from the start of buf and returns the number of bytes
// it took, line end included. atEOF says that no more bytes will ever follow
// buf (a drained rotated file, or a backfill): a last record without a line end
// is then complete, and an unclosed quote is broken rather than pending.
func (s *scanner) scan(buf []byte, atEOF bool) (int, scanStatus) {
	s.fields = s.fields[:0]
	s.scratch = s.scratch[:0]
	s.multiline, s.lenient = false, false
	if len(buf) == 0 {
		return 0, scanNeedMore
	}
	b := buf
	capped := false
	if len(b) > s.maxBytes {
		b, capped = b[:s.maxBytes], true
	}
	// incomplete decides what a record running off the end of b means.
	incomplete := func(inQuote bool) (int, scanStatus) {
		switch {
		case capped || len(b) >= s.maxBytes:
			return 0, scanTooLong
		case !atEOF:
			return 0, scanNeedMore
		case inQuote:
			return len(b), scanBroken
		}
		return len(b), scanRecord
	}
	pos := 0
	lineEnd := -1 // index of the first '\n' at or after pos, or len(b) if none
	lines := 0
	defer func() { s.lines, s.multiline = lines, lines > 0 }()
	for {
		if pos < len(b) && b[pos] == '"' {
			end, next, ok := s.quoted(b, pos, &lines)
			if !ok {
				if next == len(b) && atEOF && !capped && len(b) < s.maxBytes {
					// The closing quote was the last byte of the file.
					s.fields = append(s.fields, end)
					return len(b), scanRecord
				}
				return incomplete(true)
			}
			s.fields = append(s.fields, end)
			pos = next
			// pos is just past the closing quote: a delimiter or line end.
			if pos >= len(b) {
				if r, st := incomplete(false); st != scanRecord {
					return r, st
				}
				return len(b), scanRecord
			}
			switch b[pos] {
			case ',':
				pos++
				if pos == len(b) {
					if r, st := incomplete(false); st != scanRecord {
						return r, st
					}
					s.fields = append(s.fields, nil)
					return len(b), scanRecord
				}
				continue
			case '\n':
				return pos + 1, scanRecord
			case '\r':
				if pos+1 < len(b) && b[pos+1] == '\n' {
					return pos + 2, scanRecord
				}
				if pos+1 == len(b) {
					if r, st := incomplete(false); st != scanRecord {
						return r, st
					}
					return len(b), scanRecord
				}
			}
			// Text after a closing quote: be lenient and keep it as part of
			// the field, up to the next delimiter, as PowerMTA never writes it
			// and a reader that keeps going beats one that drops the line.
			s.lenient = true
			if lineEnd < pos {
				lineEnd = indexFrom(b, pos, '\n')
			}
			stop := pos + indexOrLen(b[pos:lineEnd], ',')
			start := len(s.scratch)
			s.scratch = append(s.scratch, s.fields[len(s.fields)-1]...)
			s.scratch = append(s.scratch, b[pos:stop]...)
			s.fields[len(s.fields)-1] = trimCR(s.scratch[start:], stop == lineEnd)
			if stop < lineEnd {
				pos = stop + 1
				continue
			}
			if lineEnd == len(b) {
				if r, st := incomplete(false); st != scanRecord {
					return r, st
				}
				return len(b), scanRecord
			}
			return lineEnd + 1, scanRecord
		}
		if lineEnd < pos {
			lineEnd = indexFrom(b, pos, '\n')
		}
		seg := b[pos:lineEnd]
		if c := indexComma(seg); c >= 0 {
			s.fields = append(s.fields, seg[:c])
			pos += c + 1
			continue
		}
		if lineEnd == len(b) {
			r, st := incomplete(false)
			if st == scanRecord {
				s.fields = append(s.fields, trimCR(seg, true))
			}
			return r, st
		}
		s.fields = append(s.fields, trimCR(seg, true))
		return lineEnd + 1, scanRecord
	}
}

// quoted reads the quoted field opening at b[pos]. It returns the field value,
// the index just past the closing quote and true; or false when b ends before
// the field does (next is then len(b) if the last byte was a lone quote that
// may or may not be doubled by the next read). It adds the line breaks inside
// the field to *lines.
func (s *scanner) quoted(b []byte, pos int, lines *int) (val []byte, next int, ok bool) {
	start := pos + 1
	i := start
	copied := -1 // start of the value in scratch once a doubled quote was seen
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			*lines += bytes.Count(b[i:], nl)
			return nil, 0, false
		}
		j += i
		*lines += bytes.Count(b[i:j], nl)
		if j+1 < len(b) && b[j+1] == '"' {
			if copied < 0 {
				copied = len(s.scratch)
				s.scratch = append(s.scratch, b[start:j+1]...)
			} else {
				s.scratch = append(s.scratch, b[i:j+1]...)
			}
			i = j + 2
			continue
		}
		if j+1 == len(b) {
			// Either the closing quote or the first half of a doubled one.
			if copied < 0 {
				val = b[start:j]
			} else {
				s.scratch = append(s.scratch, b[i:j]...)
				val = s.scratch[copied:]
			}
			return val, len(b), false
		}
		if copied < 0 {
			return b[start:j], j + 1, true
		}
		s.scratch = append(s.scratch, b[i:j]...)
		return s.scratch[copied:], j + 1, true
	}
}

var nl = []byte{'\n'}

// resync returns how many bytes to drop to get past a record scan gave up on:
// everything up to and including the first line end, so that reading resumes
// on the next physical line. ok is false if buf holds no line end at all; the
// caller then drops all of buf and keeps skipping until one arrives.
func resync(buf []byte) (n int, ok bool) {
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		return i + 1, true
	}
	return len(buf), false
}

func indexFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}

func indexOrLen(b []byte, c byte) int {
	if i := bytes.IndexByte(b, c); i >= 0 {
		return i
	}
	return len(b)
}

// trimCR drops the CR of a CRLF line end from the last field of a line.
func trimCR(f []byte, atLineEnd bool) []byte {
	if atLineEnd && len(f) > 0 && f[len(f)-1] == '\r' {
		return f[:len(f)-1]
	}
	return f
}

// indexComma is bytes.IndexByte(b, ','), eight bytes at a time in a word.
// Fields are short — a dozen bytes on average — and for such lengths the
// call and set-up of the vector search cost more than the search; this was
// the largest single cost of scanning.
func indexComma(b []byte) int {
	const (
		commas = 0x2C2C2C2C2C2C2C2C
		ones   = 0x0101010101010101
		highs  = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:]) ^ commas
		// The lowest set high bit marks the first zero byte of x exactly;
		// bits above it may be false, and are not looked at.
		if m := (x - ones) &^ x & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ',' {
			return i
		}
	}
	return -1
}
