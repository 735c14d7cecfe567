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
}

// parseSeedStatus reads the seed /status.json. The three documented keys
// must be present and readable; a document without them is most likely a
// real PowerMTA (or something else) answering on that URL.
func parseSeedStatus(r io.Reader) (seedStatus, error) {
	br, err := sniff(r, "JSON")
	if err != nil {
		return seedStatus{}, err
	}
	if b, _ := br.Peek(1); len(b) == 1 && b[0] != '{' {
		return seedStatus{}, fmt.Errorf("status.json is not a JSON object: %s", snippet(b4(br)))
	}
	var s seedStatus
	if err := decodeJSON(br, &s); err != nil {
		return seedStatus{}, err
	}
	var problems []error
	for _, c := range []struct {
		key     string
		ok, bad bool
	}{
		{"queue_depth", s.QueueDepth.ok, s.QueueDepth.bad},
		{"msgs_per_sec", s.MsgsPerSec.ok, s.MsgsPerSec.bad},
		{"active_connections", s.ActiveConnections.ok, s.ActiveConnections.bad},
		{"connections_in", true, s.ConnectionsIn.bad},
		{"connections_out", true, s.ConnectionsOut.bad},
	} {
		switch {
		case c.bad:
			problems = append(problems, fmt.Errorf("status.json: %s is not a number", c.key))
		case !c.ok:
			problems = append(problems, fmt.Errorf("status.json: %s is missing (not the seed status document?)", c.key))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return seedStatus{}, err
	}
	return s, nil
}

// fields returns the pmta_status fields of the seed dialect.
func (s *seedStatus) fields() []agent.Field {
	fields := []agent.Field{
		{Key: "queue_rcp", Value: s.QueueDepth.v},
		{Key: "out_rcp_per_sec", Value: s.MsgsPerSec.v},
		{Key: "conn_active", Value: s.ActiveConnections.v},
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
	return parseSeedCSV(r, "queue.csv", 3, func(rec []string, h csvHeader) listRow {
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
	return parseSeedCSV(r, "domain.csv", 5, func(rec []string, h csvHeader) listRow {
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
	return parseSeedCSV(r, "vmta.csv", 3, func(rec []string, h csvHeader) listRow {
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

// parseSeedCSV reads a seed CSV with a header row. Rows shorter than
// minCols, rows that CSV cannot parse and rows with a bad number are skipped
// and counted. A body whose header is too short to be this CSV (an HTML or
// plain-text error page) fails the whole endpoint.
func parseSeedCSV(r io.Reader, name string, minCols int, read func(rec []string, h csvHeader) listRow) (listing, error) {
	br, err := sniff(r, "CSV")
	if err != nil {
		return listing{}, err
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return listing{}, errEmptyBody
		}
		return listing{}, fmt.Errorf("%s: read header: %w", name, err)
	}
	if len(header) < minCols {
		return listing{}, fmt.Errorf("%s: header has %d column(s), want at least %d: not the seed CSV: %s",
			name, len(header), minCols, snippet([]byte(strings.Join(header, ","))))
	}
	h := newCSVHeader(header)
	var l listing
	for {
		rec, err := cr.Read()
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
		if len(rec) < minCols {
			l.skipped++
			continue
		}
		row := read(rec, h)
		if !row.valid() {
			l.skipped++
			continue
		}
		l.rows = append(l.rows, row)
	}
}
