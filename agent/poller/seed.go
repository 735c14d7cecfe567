package poller

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// seedStatus is GET /status.json of the seed dialect:
// {"queue_depth":int,"msgs_per_sec":float,"active_connections":int,
// "connections_in":int,"connections_out":int}, the last two optional.
type seedStatus struct {
	QueueDepth        flexInt   `json:"queue_depth"`
	MsgsPerSec        flexFloat `json:"msgs_per_sec"`
	ActiveConnections flexInt   `json:"active_connections"`
	ConnectionsIn     flexInt   `json:"connections_in"`
	ConnectionsOut    flexInt   `json:"connections_out"`

	// missing names the documented keys that were absent, unreadable the
	// keys whose value is not a number; those fields are left out.
	missing, unreadable []string
}

// parseSeedStatus reads the seed /status.json and takes what is there: a
// key that is absent or not a number is left out and named in missing or
// unreadable. A document with none of the three documented keys is most
// likely a real PowerMTA (or something else) answering on that URL, and one
// in which none of them can be read says nothing; both are errors.
func parseSeedStatus(r io.Reader) (seedStatus, error) {
	br, err := sniff(r, "JSON")
	if err != nil {
		return seedStatus{}, err
	}
	if b, _ := br.Peek(1); len(b) == 1 && b[0] != '{' {
		return seedStatus{}, fmt.Errorf("status.json is not a JSON object: %s", snippet(b4(br)))
	}
	js := newJSONStream(br)
	if _, err := js.token(); err != nil { // the '{' peeked at
		return seedStatus{}, err
	}
	var s seedStatus
	if err := js.decodeMembers(&s); err != nil { // flex values have no type errors
		return seedStatus{}, err
	}
	if err := js.end(); err != nil {
		return seedStatus{}, err
	}
	readable := 0
	var problems []string
	for _, c := range []struct {
		key      string
		ok, bad  bool
		optional bool
	}{
		{"queue_depth", s.QueueDepth.ok, s.QueueDepth.bad, false},
		{"msgs_per_sec", s.MsgsPerSec.ok, s.MsgsPerSec.bad, false},
		{"active_connections", s.ActiveConnections.ok, s.ActiveConnections.bad, false},
		{"connections_in", s.ConnectionsIn.ok, s.ConnectionsIn.bad, true},
		{"connections_out", s.ConnectionsOut.ok, s.ConnectionsOut.bad, true},
	} {
		switch {
		case c.bad:
			s.unreadable = append(s.unreadable, c.key)
			problems = append(problems, c.key+" is not a number")
		case c.ok && !c.optional:
			readable++
		case !c.ok && !c.optional:
			s.missing = append(s.missing, c.key)
			problems = append(problems, c.key+" is missing")
		}
	}
	switch {
	case len(s.missing) == 3:
		return seedStatus{}, errors.New("status.json: queue_depth is missing, as are msgs_per_sec and active_connections (not the seed status document?)")
	case readable == 0:
		return seedStatus{}, fmt.Errorf("status.json: none of queue_depth, msgs_per_sec, active_connections can be read: %s",
			strings.Join(problems, ", "))
	}
	return s, nil
}

// fields returns the pmta_status fields of the seed dialect that the
// document holds.
func (s *seedStatus) fields() []agent.Field {
	fields := make([]agent.Field, 0, 5)
	if s.QueueDepth.ok {
		fields = append(fields, agent.Field{Key: "queue_rcp", Value: s.QueueDepth.v})
	}
	if s.MsgsPerSec.ok {
		fields = append(fields, agent.Field{Key: "out_rcp_per_sec", Value: s.MsgsPerSec.v})
	}
	if s.ActiveConnections.ok {
		fields = append(fields, agent.Field{Key: "conn_active", Value: s.ActiveConnections.v})
	}
	if s.ConnectionsIn.ok {
		fields = append(fields, agent.Field{Key: "conn_in", Value: s.ConnectionsIn.v})
	}
	if s.ConnectionsOut.ok {
		fields = append(fields, agent.Field{Key: "conn_out", Value: s.ConnectionsOut.v})
	}
	return fields
}

// csvHeader finds the optional seed columns by name. The documented columns
// (domain in 1, delivered in 4, …) are read by position: that is the
// contract, whatever the header calls them.
type csvHeader map[string]int

func newCSVHeader(names []string) csvHeader {
	h := make(csvHeader, len(names))
	for i, n := range names {
		n = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(n, "\ufeff")))
		if _, dup := h[n]; !dup {
			h[n] = i
		}
	}
	return h
}

// get returns the value of the first of names the header has, and whether
// the row has that column.
func (h csvHeader) get(rec []string, names ...string) string {
	for _, n := range names {
		if i, ok := h[n]; ok {
			if i < len(rec) {
				return rec[i]
			}
			return ""
		}
	}
	return ""
}

// parseSeedQueues reads /queue.csv: domain,vmta,rcpt,kbytes,conn,paused,mode
// (domain, vmta and rcpt by position).
func parseSeedQueues(r io.Reader) (listing, error) {
	numeric := func(rec []string) bool { return isInt(rec[2]) }
	return parseSeedCSV(r, "queue.csv", 3, numeric, func(rec []string, h csvHeader) listRow {
		var row listRow
		row.Name.set(rec[0])
		row.VMTA = strings.TrimSpace(rec[1])
		row.Rcp.set(rec[2])
		if !row.Rcp.ok {
			row.Rcp.bad = true // the recipient count is the point of the row
		}
		row.KB.set(h.get(rec, "kbytes", "kb"))
		row.Conn.set(h.get(rec, "conn", "connections"))
		row.Paused.set(h.get(rec, "paused"))
		row.Mode.set(h.get(rec, "mode"))
		return row
	})
}

// parseSeedDomains reads /domain.csv: domain,rcpt,kbytes,delivered,deferred,conn
// (domain, delivered and deferred by position).
func parseSeedDomains(r io.Reader) (listing, error) {
	numeric := func(rec []string) bool { return isInt(rec[3]) && isInt(rec[4]) }
	return parseSeedCSV(r, "domain.csv", 5, numeric, func(rec []string, h csvHeader) listRow {
		var row listRow
		row.Name.set(rec[0])
		row.Delivered.set(rec[3])
		row.Deferred.set(rec[4])
		if !row.Delivered.ok || !row.Deferred.ok {
			row.Delivered.bad = true
		}
		row.Rcp.set(h.get(rec, "rcpt", "rcp", "recipients"))
		row.KB.set(h.get(rec, "kbytes", "kb"))
		row.Conn.set(h.get(rec, "conn", "connections"))
		return row
	})
}

// parseSeedVMTAs reads /vmta.csv: vmta,rcpt,msgs_per_sec,kbytes,conn,domains
// (vmta and msgs_per_sec by position).
func parseSeedVMTAs(r io.Reader) (listing, error) {
	numeric := func(rec []string) bool { return isFloat(rec[2]) }
	return parseSeedCSV(r, "vmta.csv", 3, numeric, func(rec []string, h csvHeader) listRow {
		var row listRow
		row.Name.set(rec[0])
		row.MsgsPerSec.set(rec[2])
		if !row.MsgsPerSec.ok {
			row.MsgsPerSec.bad = true
		}
		row.Rcp.set(h.get(rec, "rcpt", "rcp", "recipients"))
		row.KB.set(h.get(rec, "kbytes", "kb"))
		row.Conn.set(h.get(rec, "conn", "connections"))
		row.Domains.set(h.get(rec, "domains", "dom"))
		return row
	})
}

func isInt(s string) bool {
	var f flexInt
	f.set(s)
	return f.ok
}

func isFloat(s string) bool {
	var f flexFloat
	f.set(s)
	return f.ok
}

// maxCSVRecord bounds one CSV record (row). csv.Reader holds a whole record
// with a string, an index and a position per field, so a line of nothing but
// commas costs some 150 bytes of memory per byte; a seed row is well under
// 1 KiB.
const maxCSVRecord = 16 << 10

var errCSVRecord = fmt.Errorf("a row longer than %d bytes: not the seed CSV", maxCSVRecord)

// parseSeedCSV reads a seed CSV. Its first row is a header unless the
// columns the format fixes as numbers hold numbers there (numeric): then the
// file has no header, and the optional columns, which only a header can
// name, are absent. Rows shorter than minCols, rows that CSV cannot parse and
// rows with a bad number are skipped and counted. A body whose first row is
// too short to be this CSV (an HTML or plain-text error page) fails the
// whole endpoint, as does a record longer than maxCSVRecord.
func parseSeedCSV(r io.Reader, name string, minCols int, numeric func([]string) bool,
	read func(rec []string, h csvHeader) listRow) (listing, error) {
	br, err := sniff(r, "CSV")
	if err != nil {
		return listing{}, err
	}
	// csv.Reader buffers the whole of the record it reads and reads ahead
	// 4 KiB at most; start is the end of the last record it returned (its
	// InputOffset moves line by line within a record).
	var start int64
	cr := csv.NewReader(&valueLimit{r: br, max: maxCSVRecord + 4<<10, err: errCSVRecord,
		start: func() int64 { return start }})
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	first, err := cr.Read()
	start = cr.InputOffset()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return listing{}, errEmptyBody
		}
		return listing{}, fmt.Errorf("%s: read header: %w", name, err)
	}
	var l listing
	h := csvHeader{}
	switch {
	case len(first) >= minCols && numeric(first):
		row := read(first, h)
		l.add(&row)
	case len(first) < minCols:
		return listing{}, fmt.Errorf("%s: header has %d column(s), want at least %d: not the seed CSV: %s",
			name, len(first), minCols, snippet([]byte(strings.Join(first, ","))))
	default:
		h = newCSVHeader(first)
	}
	for {
		rec, err := cr.Read()
		start = cr.InputOffset()
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			l.skipped++
			continue
		}
		if err != nil {
			return listing{}, fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case len(rec) < minCols:
			l.skipped++
		case l.full():
			l.dropped++
		default:
			row := read(rec, h)
			l.add(&row)
		}
	}
}
