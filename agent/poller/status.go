package poller

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// status is the /status document of the pmta dialect (data.status, or
// data.mta.status on some 5.0r1 builds). The same struct reads JSON and XML:
// element and member names are identical in both.
type status struct {
	TimeNow      flexString `json:"timeNow" xml:"timeNow"`
	StartupTime  flexString `json:"startupTime" xml:"startupTime"`
	ShuttingDown flexBool   `json:"shuttingDown" xml:"shuttingDown"`
	Traffic      struct {
		Total   trafficWindow `json:"total" xml:"total"`
		LastHr  trafficWindow `json:"lastHr" xml:"lastHr"`
		LastMin trafficWindow `json:"lastMin" xml:"lastMin"`
	} `json:"traffic" xml:"traffic"`
	Conn struct {
		SMTPIn  connCounters `json:"smtpIn" xml:"smtpIn"`
		SMTPOut connCounters `json:"smtpOut" xml:"smtpOut"`
	} `json:"conn" xml:"conn"`
	Resolver struct {
		NamesCached    flexInt `json:"namesCached" xml:"namesCached"`
		QueriesPending flexInt `json:"queriesPending" xml:"queriesPending"`
		QueriesActive  flexInt `json:"queriesActive" xml:"queriesActive"`
	} `json:"resolver" xml:"resolver"`
	Queue queueTypes `json:"queue" xml:"queue"`
	Spool struct {
		InitPct flexFloat `json:"initPct" xml:"initPct"`
		Files   struct {
			InUse flexInt `json:"inUse" xml:"inUse"`
			Total flexInt `json:"total" xml:"total"`
		} `json:"files" xml:"files"`
		TotalRcp flexInt `json:"totalRcp" xml:"totalRcp"`
		MaxRcp   flexInt `json:"maxRcp" xml:"maxRcp"`
	} `json:"spool" xml:"spool"`
}

// trafficWindow is one of traffic.total, lastHr, lastMin, topPerHr, topPerMin.
type trafficWindow struct {
	Out                   ioCounters `json:"out" xml:"out"`
	In                    ioCounters `json:"in" xml:"in"`
	BounceProcessed       flexInt    `json:"bounceProcessed" xml:"bounceProcessed"`
	FeedbackLoopProcessed flexInt    `json:"feedbackLoopProcessed" xml:"feedbackLoopProcessed"`
}

type ioCounters struct {
	Rcp flexInt   `json:"rcp" xml:"rcp"`
	Msg flexInt   `json:"msg" xml:"msg"`
	KB  flexFloat `json:"kb" xml:"kb"`
}

type connCounters struct {
	Cur flexInt `json:"cur" xml:"cur"`
	Max flexInt `json:"max" xml:"max"`
	Top flexInt `json:"top" xml:"top"`
}

type queueTotals struct {
	Rcp flexInt   `json:"rcp" xml:"rcp"`
	Dom flexInt   `json:"dom" xml:"dom"`
	KB  flexFloat `json:"kb" xml:"kb"`
}

// queueTypes is status.queue: the smtp queue, which is what operators call
// "the queue", and the other types (pipe, discard, file, alias,
// bounceProcessor, feedbackLoopProcessor, and any a later version adds),
// whose recipients are summed.
type queueTypes struct {
	smtp     queueTotals
	otherRcp flexInt
	bad      bool // queue was not an object
}

func (q *queueTypes) add(name string, t queueTotals) {
	if name == "smtp" {
		q.smtp = t
		return
	}
	switch {
	case t.Rcp.bad:
		q.otherRcp.bad = true
	case t.Rcp.ok:
		q.otherRcp.v += t.Rcp.v
		q.otherRcp.ok = true
	}
}

func (q *queueTypes) UnmarshalJSON(data []byte) error {
	*q = queueTypes{}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		q.bad = true
		return nil
	}
	for name, raw := range m {
		var t queueTotals
		if err := json.Unmarshal(raw, &t); err != nil {
			q.bad = true
			continue
		}
		q.add(name, t)
	}
	return nil
}

func (q *queueTypes) UnmarshalXML(dec *xml.Decoder, start xml.StartElement) error {
	*q = queueTypes{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var qt queueTotals
			if err := dec.DecodeElement(&qt, &t); err != nil {
				return err
			}
			q.add(t.Name.Local, qt)
		case xml.EndElement:
			return nil
		}
	}
}

// parseStatusJSON reads GET /status?format=json. The status object is
// data.status, or data.mta.status on some 5.0r1 builds; data.status wins
// when both are objects, wherever each sits in the reply.
func parseStatusJSON(r io.Reader) (status, error) {
	var (
		top, nested *foundStatus
		shapeErr    error
	)
	err := readJSONEnvelope(r, func(s *jsonStream, first json.Token) error {
		top, nested, shapeErr = nil, nil, nil // a later "data" wins
		if first != json.Delim('{') {
			shapeErr = errors.New("status reply: data is not an object")
			return s.skip(first)
		}
		return s.members(func(name string) error {
			var err error
			switch {
			case strings.EqualFold(name, "status"):
				top, err = s.statusObject()
			case strings.EqualFold(name, "mta"):
				nested, err = s.mtaStatus()
			default:
				err = s.skipValue()
			}
			return err
		})
	})
	switch {
	case err != nil:
		return status{}, err
	case shapeErr != nil:
		return status{}, shapeErr
	case top == nil:
		top = nested
	}
	switch {
	case top == nil:
		return status{}, errors.New("status reply has no status object (neither data.status nor data.mta.status)")
	case top.typeErr != nil:
		return status{}, fmt.Errorf("status reply: %w", top.typeErr)
	}
	return top.st, nil
}

// foundStatus is a status object of the reply, with the first of its values
// that had the wrong type: such an object is refused, as json.Unmarshal
// would refuse it.
type foundStatus struct {
	st      status
	typeErr error
}

// statusObject reads a member that should be the status object; any other
// value yields nil.
func (s *jsonStream) statusObject() (*foundStatus, error) {
	tok, err := s.token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, s.skip(tok)
	}
	f := &foundStatus{}
	if err := s.decodeMembers(&f.st); err != nil {
		if !isTypeError(err) {
			return nil, err
		}
		f.typeErr = err
	}
	return f, nil
}

// mtaStatus reads data.mta and returns the status object in it, if any.
func (s *jsonStream) mtaStatus() (*foundStatus, error) {
	tok, err := s.token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, s.skip(tok)
	}
	var found *foundStatus
	err = s.members(func(name string) error {
		if !strings.EqualFold(name, "status") {
			return s.skipValue()
		}
		var err error
		found, err = s.statusObject() // a later duplicate wins
		return err
	})
	return found, err
}

// parseStatusXML reads GET /status?format=xml.
func parseStatusXML(r io.Reader) (status, error) {
	var found *status
	err := xmlEnvelope(r, func(dec *xml.Decoder, start xml.StartElement) error {
		var d struct {
			Status *status `xml:"status"`
			MTA    struct {
				Status *status `xml:"status"`
			} `xml:"mta"`
		}
		if err := dec.DecodeElement(&d, &start); err != nil {
			return xmlErr(err)
		}
		found = d.Status
		if found == nil {
			found = d.MTA.Status // 5.0r1 quirk
		}
		return nil
	})
	if err != nil {
		return status{}, err
	}
	if found == nil {
		return status{}, errors.New("status reply has no <status> (neither data/status nor data/mta/status)")
	}
	return *found, nil
}

// pmtaTimeLayout is how PowerMTA writes timeNow and startupTime: local time
// without a zone.
const pmtaTimeLayout = "2006-01-02 15:04:05"

// fields returns the pmta_status fields the document holds, in a fixed
// order. Values PowerMTA sent but that cannot be read are left out and named
// in bad, so that one odd value never hides all the others.
func (s *status) fields() (fields []agent.Field, bad []string) {
	fields = make([]agent.Field, 0, 40)
	i := func(name string, f flexInt) {
		switch {
		case f.bad:
			bad = append(bad, name)
		case f.ok:
			fields = append(fields, agent.Field{Key: name, Value: f.v})
		}
	}
	fl := func(name string, f flexFloat) {
		switch {
		case f.bad:
			bad = append(bad, name)
		case f.ok:
			fields = append(fields, agent.Field{Key: name, Value: f.v})
		}
	}
	if s.Queue.bad {
		bad = append(bad, "queue")
	}
	i("queue_rcp", s.Queue.smtp.Rcp)
	i("queue_domains", s.Queue.smtp.Dom)
	fl("queue_kb", s.Queue.smtp.KB)
	i("queue_other_rcp", s.Queue.otherRcp)
	in, out := s.Conn.SMTPIn, s.Conn.SMTPOut
	i("conn_in", in.Cur)
	i("conn_in_max", in.Max)
	i("conn_in_top", in.Top)
	i("conn_out", out.Cur)
	i("conn_out_max", out.Max)
	i("conn_out_top", out.Top)
	tot := s.Traffic.Total
	i("out_rcp_total", tot.Out.Rcp)
	i("out_msg_total", tot.Out.Msg)
	fl("out_kb_total", tot.Out.KB)
	i("in_rcp_total", tot.In.Rcp)
	i("in_msg_total", tot.In.Msg)
	fl("in_kb_total", tot.In.KB)
	i("out_rcp_last_min", s.Traffic.LastMin.Out.Rcp)
	i("out_rcp_last_hr", s.Traffic.LastHr.Out.Rcp)
	i("in_rcp_last_min", s.Traffic.LastMin.In.Rcp)
	i("in_rcp_last_hr", s.Traffic.LastHr.In.Rcp)
	i("bounce_processed_total", tot.BounceProcessed)
	i("fbl_processed_total", tot.FeedbackLoopProcessed)
	i("resolver_pending", s.Resolver.QueriesPending)
	i("resolver_active", s.Resolver.QueriesActive)
	i("resolver_names_cached", s.Resolver.NamesCached)
	i("spool_rcp", s.Spool.TotalRcp)
	i("spool_max_rcp", s.Spool.MaxRcp)
	i("spool_files_in_use", s.Spool.Files.InUse)
	i("spool_files_total", s.Spool.Files.Total)
	// initPct is a whole number in every sample, but it is a percentage:
	// a float keeps the field type stable should a build send a fraction.
	fl("spool_init_pct", s.Spool.InitPct)
	switch {
	case s.ShuttingDown.bad:
		bad = append(bad, "shutting_down")
	case s.ShuttingDown.ok:
		fields = append(fields, agent.Field{Key: "shutting_down", Value: int01(s.ShuttingDown.v)})
	}
	if up, ok := s.uptime(); ok {
		fields = append(fields, agent.Field{Key: "uptime_s", Value: up})
	}
	return fields, bad
}

// uptime is timeNow − startupTime in whole seconds. Both are local times
// without a zone, read here as UTC: their difference is right except across
// a daylight-saving change, where it is off by the shift.
func (s *status) uptime() (int64, bool) {
	if !s.TimeNow.ok || !s.StartupTime.ok {
		return 0, false
	}
	now, err1 := time.Parse(pmtaTimeLayout, s.TimeNow.v)
	start, err2 := time.Parse(pmtaTimeLayout, s.StartupTime.v)
	if err1 != nil || err2 != nil || now.Before(start) {
		return 0, false
	}
	return int64(now.Sub(start) / time.Second), true
}

// counters returns the cumulative totals used for rates and restart detection.
func (s *status) counters() counters {
	tot := s.Traffic.Total
	c := counters{
		outRcp: tot.Out.Rcp, outMsg: tot.Out.Msg, outKB: tot.Out.KB,
		inRcp: tot.In.Rcp, inMsg: tot.In.Msg, inKB: tot.In.KB,
		bounce: tot.BounceProcessed, fbl: tot.FeedbackLoopProcessed,
	}
	if s.StartupTime.ok {
		c.startup = s.StartupTime.v
	}
	return c
}
