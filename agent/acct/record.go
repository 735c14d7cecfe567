package acct

import (
	"bytes"
	"errors"
)

// recType is PowerMTA's record type. The zero value is no type.
type recType uint8

const (
	typeD recType = iota + 1
	typeB
	typeT
	typeTQ
	typeR
	typeF
	typeRB
	typeRS
	numTypes
)

// String returns the type as PowerMTA writes it.
func (t recType) String() string {
	switch t {
	case typeD:
		return "d"
	case typeB:
		return "b"
	case typeT:
		return "t"
	case typeTQ:
		return "tq"
	case typeR:
		return "r"
	case typeF:
		return "f"
	case typeRB:
		return "rb"
	case typeRS:
		return "rs"
	}
	return ""
}

func parseType(b []byte) (recType, bool) {
	switch string(b) {
	case "d":
		return typeD, true
	case "b":
		return typeB, true
	case "t":
		return typeT, true
	case "tq":
		return typeTQ, true
	case "r":
		return typeR, true
	case "f":
		return typeF, true
	case "rb":
		return typeRB, true
	case "rs":
		return typeRS, true
	}
	return 0, false
}

// hasDiag says whether the type's dsnDiag is worth grouping: failures only.
func (t recType) hasDiag() bool {
	return t == typeB || t == typeT || t == typeTQ || t == typeRB || t == typeRS
}

// col names a column the aggregator uses. Columns it does not use map to
// colNone and are never looked at.
type col int8

const (
	colNone col = iota - 1
	colType
	colTimeLogged
	colTimeQueued
	colRcpt
	colQueue
	colVmta
	colVmtaPool
	colDlvSourceIP
	colBounceCat
	colDsnStatus
	colDsnDiag
	colDlvSize
	numCols
)

func colByName(name string) col {
	switch name {
	case "type":
		return colType
	case "timeLogged":
		return colTimeLogged
	case "timeQueued":
		return colTimeQueued
	case "rcpt":
		return colRcpt
	case "queue":
		return colQueue
	case "vmta":
		return colVmta
	case "vmtaPool":
		return colVmtaPool
	case "dlvSourceIp":
		return colDlvSourceIP
	case "bounceCat":
		return colBounceCat
	case "dsnStatus":
		return colDsnStatus
	case "dsnDiag":
		return colDsnDiag
	case "dlvSize":
		return colDlvSize
	}
	return colNone
}

// header is a file's column map, taken from its latest header row.
type header struct {
	names []string
	cols  []col
}

func newHeader(names []string) *header {
	h := &header{names: names, cols: make([]col, len(names))}
	for i, n := range names {
		h.cols[i] = colByName(n)
	}
	return h
}

// headerFromFields copies a header row out of the scanner's buffer. Names
// are trimmed ("type, timeLogged" written by hand) and a byte-order mark
// before the first is dropped (a file saved by an editor). A row with a CR
// inside is a whole file with CR-only line ends, which is refused rather
// than read as one header row that counts nothing.
func headerFromFields(fields [][]byte) (*header, error) {
	names := make([]string, len(fields))
	for i, f := range fields {
		if bytes.IndexByte(f, '\r') >= 0 {
			return nil, errCRHeader
		}
		if i == 0 {
			f = bytes.TrimPrefix(f, bom)
		}
		names[i] = string(trimSpace(f))
	}
	return newHeader(names), nil
}

var bom = []byte("\xef\xbb\xbf")

// isHeaderRow reports whether a row is a header: PowerMTA starts every file
// with one, and any row whose first field is "type" (after a byte-order
// mark, if any) replaces the column map.
func isHeaderRow(fields [][]byte) bool {
	if len(fields) == 0 {
		return false
	}
	f := fields[0]
	if string(f) == "type" {
		return true
	}
	if len(f) <= 4 || (f[0] != bom[0] && !isSpace(f[0]) && !isSpace(f[len(f)-1])) {
		return false // the cost of a data row: two byte compares
	}
	return string(trimSpace(bytes.TrimPrefix(f, bom))) == "type"
}

// record is one accounting line reduced to what the aggregator needs. Its
// byte slices point into the scanner's buffer or into dom, and are valid until
// the next record is parsed.
type record struct {
	typ        recType
	timeLogged int64 // Unix seconds
	timeQueued int64 // Unix seconds, when hasQueued
	hasQueued  bool
	domain     []byte // lower case; from queue, else from rcpt
	vmta       []byte // from vmta, else from queue
	pool       []byte
	sourceIP   []byte
	bounceCat  []byte
	dsnStatus  []byte
	dsnDiag    []byte
	size       int64
	dom        []byte // backing store for a lower-cased domain
	vbuf       []byte // backing store for a vmta that is not in the line
	tcLogged   timeCache
	tcQueued   timeCache
}

// Reasons a line is malformed; sentinel values so that counting them costs
// no allocation.
var (
	errNoHeader    = errors.New("record before any header row")
	errShape       = errors.New("field count differs from the header")
	errType        = errors.New("unknown record type")
	errTimeLogged  = errors.New("unparseable timeLogged")
	errTooLong     = errors.New("record too long or unterminated quote")
	errBroken      = errors.New("unterminated quote at end of file")
	errStrayQuote  = errors.New("quote never closed: the record runs into the next one")
	errQuotedLines = errors.New("quoted field over more lines than any SMTP reply")
	errNUL         = errors.New("NUL bytes (what a crash can leave in a file)")
	errCRHeader    = errors.New("header row with CR line ends (only LF and CRLF are supported)")
)

// parseRecord maps a data row onto rec through the file's header. For
// duplicate column names the first non-empty value wins.
func parseRecord(h *header, fields [][]byte, rec *record) error {
	if h == nil {
		return errNoHeader
	}
	if len(fields) != len(h.cols) {
		return errShape
	}
	var v [numCols][]byte
	for i, f := range fields {
		if c := h.cols[i]; c >= 0 && len(v[c]) == 0 {
			v[c] = f
		}
	}
	typ, ok := parseType(v[colType])
	if !ok {
		return errType
	}
	tl, ok := rec.tcLogged.parse(v[colTimeLogged])
	if !ok {
		return errTimeLogged
	}
	rec.typ = typ
	rec.timeLogged = tl
	rec.timeQueued, rec.hasQueued = rec.tcQueued.parse(v[colTimeQueued])
	if rec.hasQueued && (rec.timeQueued < minPlausible || rec.timeQueued > tl) {
		// A queueing time from a broken clock says nothing about the delay.
		rec.hasQueued = false
	}
	rec.pool = trimSpace(v[colVmtaPool])
	rec.sourceIP = trimSpace(v[colDlvSourceIP])
	rec.bounceCat = trimSpace(v[colBounceCat])
	rec.dsnStatus = v[colDsnStatus]
	rec.dsnDiag = v[colDsnDiag]
	rec.size = parseSize(v[colDlvSize])
	rec.vmta = trimSpace(v[colVmta])
	rec.domain = nil
	if q := trimSpace(v[colQueue]); len(q) > 0 {
		d, vm, ok := splitQueue(q)
		rec.dom = normalizeDomain(rec.dom[:0], d)
		rec.domain = rec.dom
		if len(rec.vmta) == 0 {
			if ok {
				rec.vmta = vm
			} else {
				rec.vbuf = append(rec.vbuf[:0], "{default}"...)
				rec.vmta = rec.vbuf
			}
		}
	} else if d := rcptDomain(v[colRcpt]); len(d) > 0 {
		rec.dom = normalizeDomain(rec.dom[:0], d)
		rec.domain = rec.dom
	}
	return nil
}

// dsnClass is the class digit of an enhanced status code ("4.7.0 (…)" → '4'),
// or 0 when it is not 2, 4 or 5.
func dsnClass(status []byte) byte {
	status = trimSpace(status)
	if len(status) > 0 {
		switch c := status[0]; c {
		case '2', '4', '5':
			return c
		}
	}
	return 0
}

// splitQueue is agent.SplitQueue over bytes, without allocating: "domain/vmta"
// → domain (not yet normalised), vmta and true; without a slash the whole
// name is the domain and false says the vmta is PowerMTA's "{default}".
func splitQueue(q []byte) (domain, vmta []byte, ok bool) {
	if i := bytes.LastIndexByte(q, '/'); i >= 0 {
		return q[:i], q[i+1:], true
	}
	return q, nil, false
}

// rcptDomain returns the part after the last '@' of an address that may be
// wrapped in angle brackets, or nil.
func rcptDomain(rcpt []byte) []byte {
	rcpt = trimSpace(rcpt)
	rcpt = bytes.TrimPrefix(rcpt, []byte{'<'})
	rcpt = bytes.TrimSuffix(rcpt, []byte{'>'})
	i := bytes.LastIndexByte(rcpt, '@')
	if i < 0 {
		return nil
	}
	return rcpt[i+1:]
}

// normalizeDomain appends d to dst as agent.NormalizeDomain would return it:
// trimmed, trailing dot removed, lower case.
func normalizeDomain(dst, d []byte) []byte {
	d = trimSpace(d)
	if n := len(d); n > 0 && d[n-1] == '.' {
		d = d[:n-1]
	}
	for _, c := range d {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// trimSpace trims ASCII white space (strings.TrimSpace also trims Unicode
// spaces, which PowerMTA does not write around names).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// parseSize reads dlvSize; anything but digits counts as no size.
func parseSize(b []byte) int64 {
	b = trimSpace(b)
	if len(b) == 0 || len(b) > 18 {
		return 0
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
