package poller

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// listRow is one entry of a queue, domain or vmta listing, from either
// dialect. Fields a dialect does not have stay absent (ok == false) and are
// left out of the point.
type listRow struct {
	Name    flexString `json:"name" xml:"name"`
	Rcp     flexInt    `json:"rcp" xml:"rcp"`
	KB      flexFloat  `json:"kb" xml:"kb"`
	Conn    flexInt    `json:"conn" xml:"conn"`
	Dom     flexInt    `json:"dom" xml:"dom"`
	Domains flexInt    `json:"domains" xml:"domains"` // the name the UI uses for dom
	Paused  flexBool   `json:"paused" xml:"paused"`
	Mode    flexString `json:"mode" xml:"mode"`

	// Seed dialect only.
	VMTA       string    `json:"-" xml:"-"`
	Delivered  flexInt   `json:"-" xml:"-"`
	Deferred   flexInt   `json:"-" xml:"-"`
	MsgsPerSec flexFloat `json:"-" xml:"-"`
}

// valid reports whether the row names something and every value it carries
// can be read. Invalid rows are skipped and counted, never fatal.
func (r *listRow) valid() bool {
	return r.Name.ok && !r.Name.bad && !r.Rcp.bad && !r.KB.bad && !r.Conn.bad &&
		!r.Dom.bad && !r.Domains.bad && !r.Paused.bad && !r.Mode.bad &&
		!r.Delivered.bad && !r.Deferred.bad && !r.MsgsPerSec.bad
}

// maxRows is the most rows a listing keeps; the rest are counted in
// rows_skipped. PowerMTA sends no more than maxitems (api.max_items, 1000 by
// default). A row costs some 550 bytes by the time it is a point, so three
// listings this long are already a good part of the agent's default
// memory_limit (64 MiB); without a bound a reply of short rows ("a,b,1" in a
// seed CSV) would cost 40 times its size.
const maxRows = 25_000

// listing is a parsed listing: the rows that could be read, how many could
// not (skipped) and how many were left out beyond maxRows (dropped).
type listing struct {
	rows    []listRow
	skipped int
	dropped int
}

// full reports whether the listing has all the rows it keeps: parsers then
// count further entries as dropped without decoding them.
func (l *listing) full() bool { return len(l.rows) >= maxRows }

// add keeps a row that was read, or counts it: skipped if it is invalid,
// dropped beyond maxRows.
func (l *listing) add(r *listRow) {
	switch {
	case !r.valid():
		l.skipped++
	case len(l.rows) >= maxRows:
		l.dropped++
	default:
		if len(l.rows) == cap(l.rows) {
			// Double (append grows large slices by a quarter, which for
			// maxRows rows allocates five times what is kept).
			l.rows = slices.Grow(l.rows, min(max(len(l.rows), 64), maxRows-len(l.rows)))
		}
		l.rows = append(l.rows, *r)
	}
}

func parseQueuesJSON(r io.Reader) (listing, error)  { return parseListJSON(r, "queue") }
func parseDomainsJSON(r io.Reader) (listing, error) { return parseListJSON(r, "domain") }
func parseVMTAsJSON(r io.Reader) (listing, error)   { return parseListJSON(r, "vmta") }
func parseQueuesXML(r io.Reader) (listing, error)   { return parseListXML(r, "queue") }
func parseDomainsXML(r io.Reader) (listing, error)  { return parseListXML(r, "domain") }
func parseVMTAsXML(r io.Reader) (listing, error)    { return parseListXML(r, "vmta") }

// parseListJSON reads a pmta listing whose entries sit under data.<key>. The
// JSON form of the listings is not documented: a repeated XML element most
// likely becomes an array, and a lone one may become a plain object, so both
// are read (and the plural key as a fallback). No key at all is an empty
// listing, which is what PowerMTA sends when nothing is queued. Entries are
// decoded one at a time as they arrive.
func parseListJSON(r io.Reader, key string) (listing, error) {
	var (
		l            listing
		shapeErr     error
		fromSingular bool // data.<key> wins over data.<key>s wherever it is
	)
	err := readJSONEnvelope(r, func(s *jsonStream, first json.Token) error {
		l, shapeErr, fromSingular = listing{}, nil, false // a later "data" wins
		if first != json.Delim('{') {
			shapeErr = fmt.Errorf("%s listing: data is not an object", key)
			return s.skip(first)
		}
		return s.members(func(name string) error {
			switch {
			case name == key:
				fromSingular = true
			case name == key+"s" && !fromSingular:
			default:
				return s.skipValue()
			}
			l, shapeErr = listing{}, nil // a later duplicate wins
			return s.listEntries(key, &l, &shapeErr)
		})
	})
	if err != nil {
		return listing{}, err
	}
	if shapeErr != nil {
		return listing{}, shapeErr
	}
	return l, nil
}

// listEntries reads the value of data.<key>: an array of entries, a lone
// entry, or null for none. Anything else is noted in shapeErr.
func (s *jsonStream) listEntries(key string, l *listing, shapeErr *error) error {
	tok, err := s.token()
	if err != nil {
		return err
	}
	row := new(listRow) // one for all entries: Decode would allocate each
	switch tok {
	case nil:
		return nil
	case json.Delim('['):
		for s.dec.More() {
			if l.full() {
				l.dropped++
				if err := s.discard(); err != nil {
					return err
				}
				continue
			}
			*row = listRow{}
			err := s.decode(row)
			switch {
			case isTypeError(err): // an entry that is not an object
				l.skipped++
			case err != nil:
				return err
			default:
				l.add(row)
			}
		}
		_, err := s.token() // the closing ']'
		return err
	case json.Delim('{'):
		if err := s.decodeMembers(row); err != nil {
			if !isTypeError(err) {
				return err
			}
			l.skipped++
			return nil
		}
		l.add(row)
		return nil
	}
	*shapeErr = fmt.Errorf("%s listing: data.%s is neither a list nor an object", key, key)
	return nil
}

// parseListXML reads a pmta listing made of repeated <key> elements in <data>.
// Other elements (title, totalRcp, …) are skipped.
func parseListXML(r io.Reader, key string) (listing, error) {
	var l listing
	row := new(listRow) // one for all entries: DecodeElement would allocate each
	err := xmlEnvelope(r, func(dec *xml.Decoder, _ xml.StartElement) error {
		for {
			tok, err := dec.Token()
			if err != nil {
				return xmlErr(err)
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Local != key || l.full() {
					if t.Name.Local == key {
						l.dropped++
					}
					if err := dec.Skip(); err != nil {
						return xmlErr(err)
					}
					continue
				}
				*row = listRow{}
				if err := dec.DecodeElement(row, &t); err != nil {
					return xmlErr(err)
				}
				l.add(row)
			case xml.EndElement:
				return nil
			}
		}
	})
	if err != nil {
		return listing{}, err
	}
	return l, nil
}

// appendCommon appends the fields every listing shares.
func (r *listRow) appendCommon(fields []agent.Field) []agent.Field {
	if r.Rcp.ok {
		fields = append(fields, agent.Field{Key: "rcp", Value: r.Rcp.v})
	}
	if r.KB.ok {
		fields = append(fields, agent.Field{Key: "kb", Value: r.KB.v})
	}
	if r.Conn.ok {
		fields = append(fields, agent.Field{Key: "conn", Value: r.Conn.v})
	}
	return fields
}

// queuePoints turns listing rows into pmta_queue points. A pmta queue name is
// "domain/vmta"; a seed row has the vmta in a column of its own.
func queuePoints(rows []listRow, t time.Time) []agent.Point {
	points := make([]agent.Point, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		var domain, vmta string
		if v := strings.TrimSpace(r.VMTA); v != "" {
			domain, vmta = agent.NormalizeDomain(r.Name.v), v
		} else {
			domain, vmta = agent.SplitQueue(r.Name.v)
		}
		fields := r.appendCommon(make([]agent.Field, 0, 5))
		if r.Paused.ok {
			fields = append(fields, agent.Field{Key: "paused", Value: int01(r.Paused.v)})
		}
		if r.Mode.ok {
			fields = append(fields, agent.Field{Key: "backoff", Value: int01(strings.EqualFold(r.Mode.v, "backoff"))})
		}
		if len(fields) == 0 || domain == "" {
			continue
		}
		points = append(points, agent.NewPoint("pmta_queue",
			[]agent.Tag{{Key: "domain", Value: domain}, {Key: "vmta", Value: vmta}}, fields, t))
	}
	return points
}

// domainPoints turns listing rows into pmta_domain points.
func domainPoints(rows []listRow, t time.Time) []agent.Point {
	points := make([]agent.Point, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		domain := agent.NormalizeDomain(r.Name.v)
		fields := r.appendCommon(make([]agent.Field, 0, 5))
		if r.Delivered.ok {
			fields = append(fields, agent.Field{Key: "delivered", Value: r.Delivered.v})
		}
		if r.Deferred.ok {
			fields = append(fields, agent.Field{Key: "deferred", Value: r.Deferred.v})
		}
		if len(fields) == 0 || domain == "" {
			continue
		}
		points = append(points, agent.NewPoint("pmta_domain",
			[]agent.Tag{{Key: "domain", Value: domain}}, fields, t))
	}
	return points
}

// vmtaPoints turns listing rows into pmta_vmta points.
func vmtaPoints(rows []listRow, t time.Time) []agent.Point {
	points := make([]agent.Point, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		fields := r.appendCommon(make([]agent.Field, 0, 5))
		switch {
		case r.Dom.ok:
			fields = append(fields, agent.Field{Key: "domains", Value: r.Dom.v})
		case r.Domains.ok:
			fields = append(fields, agent.Field{Key: "domains", Value: r.Domains.v})
		}
		if r.MsgsPerSec.ok {
			fields = append(fields, agent.Field{Key: "msgs_per_sec", Value: r.MsgsPerSec.v})
		}
		if len(fields) == 0 {
			continue
		}
		points = append(points, agent.NewPoint("pmta_vmta",
			[]agent.Tag{{Key: "vmta", Value: r.Name.v}}, fields, t))
	}
	return points
}
