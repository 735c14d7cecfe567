package sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"time"
)

// The wire types carry both encodings: JSON is typed (numbers, booleans),
// XML is text (kb with one decimal, 0/1, yes/no), as PowerMTA 5.0 prints them.
// The leaf types below implement json.Marshaler for the first and
// encoding.TextMarshaler, which encoding/xml uses, for the second.

// kb is kilobytes: a JSON number, XML text with one decimal.
type kb float64

func (v kb) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(v), 'f', -1, 64), nil
}

func (v kb) MarshalText() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(v), 'f', 1, 64), nil
}

// bit is a JSON boolean and XML 0/1.
type bit bool

func (v bit) MarshalJSON() ([]byte, error) { return json.Marshal(bool(v)) }

func (v bit) MarshalText() ([]byte, error) {
	if v {
		return []byte("1"), nil
	}
	return []byte("0"), nil
}

// yesno is a JSON boolean and XML yes/no.
type yesno bool

func (v yesno) MarshalJSON() ([]byte, error) { return json.Marshal(bool(v)) }

func (v yesno) MarshalText() ([]byte, error) {
	if v {
		return []byte("yes"), nil
	}
	return []byte("no"), nil
}

// timeLayout is how the monitor prints times: local time, no zone.
const timeLayout = "2006-01-02 15:04:05"

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeLayout)
}

type wStatusData struct {
	MTA    wMTA    `json:"mta" xml:"mta"`
	Status wStatus `json:"status" xml:"status"`
}

type wMTA struct {
	Product struct {
		Name      string `json:"name" xml:"name"`
		Version   string `json:"version" xml:"version"`
		BuildDate string `json:"buildDate" xml:"buildDate"`
		Revision  string `json:"revision" xml:"revision"`
		Bits      int64  `json:"bits" xml:"bits"`
	} `json:"product" xml:"product"`
	LAK struct {
		Serial    string `json:"serial" xml:"serial"`
		Instances int64  `json:"instances" xml:"instances"`
	} `json:"lak" xml:"lak"`
	OS struct {
		Name    string `json:"name" xml:"name"`
		Version string `json:"version" xml:"version"`
		Build   string `json:"build" xml:"build"`
	} `json:"os" xml:"os"`
	CPU struct {
		Type  string `json:"type" xml:"type"`
		Count int64  `json:"count" xml:"count"`
	} `json:"cpu" xml:"cpu"`
	RAM struct {
		Real int64 `json:"real" xml:"real"`
	} `json:"ram" xml:"ram"`
	FullHostName string `json:"fullHostName" xml:"fullHostName"`
	UserString   string `json:"userString" xml:"userString"`
	HostID       int64  `json:"hostId" xml:"hostId"`
	WebUI        struct {
		Protocol int64 `json:"protocol" xml:"protocol"`
	} `json:"webUI" xml:"webUI"`
}

type wVol struct {
	Rcp int64 `json:"rcp" xml:"rcp"`
	Msg int64 `json:"msg" xml:"msg"`
	KB  kb    `json:"kb" xml:"kb"`
}

type wWindow struct {
	Out                   wVol  `json:"out" xml:"out"`
	In                    wVol  `json:"in" xml:"in"`
	BounceProcessed       int64 `json:"bounceProcessed" xml:"bounceProcessed"`
	FeedbackLoopProcessed int64 `json:"feedbackLoopProcessed" xml:"feedbackLoopProcessed"`
}

type wConn struct {
	Cur int64 `json:"cur" xml:"cur"`
	Max int64 `json:"max" xml:"max"`
	Top int64 `json:"top" xml:"top"`
}

type wQT struct {
	Rcp int64 `json:"rcp" xml:"rcp"`
	Dom int64 `json:"dom" xml:"dom"`
	KB  kb    `json:"kb" xml:"kb"`
}

type wStatus struct {
	TimeNow      string `json:"timeNow" xml:"timeNow"`
	StartupTime  string `json:"startupTime" xml:"startupTime"`
	ShuttingDown bit    `json:"shuttingDown" xml:"shuttingDown"`
	Traffic      struct {
		Total     wWindow `json:"total" xml:"total"`
		LastHr    wWindow `json:"lastHr" xml:"lastHr"`
		LastMin   wWindow `json:"lastMin" xml:"lastMin"`
		TopPerHr  wWindow `json:"topPerHr" xml:"topPerHr"`
		TopPerMin wWindow `json:"topPerMin" xml:"topPerMin"`
		Perf      struct {
			LastMin struct {
				In struct {
					Count        int64 `json:"count" xml:"count"`
					MailFromTime int64 `json:"mailFromTime" xml:"mailFromTime"`
					DataTime     int64 `json:"dataTime" xml:"dataTime"`
					TotalTime    int64 `json:"totalTime" xml:"totalTime"`
				} `json:"in" xml:"in"`
			} `json:"lastMin" xml:"lastMin"`
		} `json:"perf" xml:"perf"`
	} `json:"traffic" xml:"traffic"`
	Conn struct {
		SMTPIn  wConn `json:"smtpIn" xml:"smtpIn"`
		SMTPOut wConn `json:"smtpOut" xml:"smtpOut"`
	} `json:"conn" xml:"conn"`
	Resolver struct {
		NamesCached    int64 `json:"namesCached" xml:"namesCached"`
		QueriesPending int64 `json:"queriesPending" xml:"queriesPending"`
		QueriesActive  int64 `json:"queriesActive" xml:"queriesActive"`
	} `json:"resolver" xml:"resolver"`
	Queue struct {
		SMTP                  wQT `json:"smtp" xml:"smtp"`
		Pipe                  wQT `json:"pipe" xml:"pipe"`
		Discard               wQT `json:"discard" xml:"discard"`
		File                  wQT `json:"file" xml:"file"`
		Alias                 wQT `json:"alias" xml:"alias"`
		BounceProcessor       wQT `json:"bounceProcessor" xml:"bounceProcessor"`
		FeedbackLoopProcessor wQT `json:"feedbackLoopProcessor" xml:"feedbackLoopProcessor"`
	} `json:"queue" xml:"queue"`
	Spool struct {
		InitPct int64 `json:"initPct" xml:"initPct"`
		Dirs    int64 `json:"dirs" xml:"dirs"`
		Files   struct {
			InUse    int64 `json:"inUse" xml:"inUse"`
			Recycled int64 `json:"recycled" xml:"recycled"`
			Total    int64 `json:"total" xml:"total"`
		} `json:"files" xml:"files"`
		TotalRcp int64 `json:"totalRcp" xml:"totalRcp"`
		MaxRcp   int64 `json:"maxRcp" xml:"maxRcp"`
	} `json:"spool" xml:"spool"`
	Status string `json:"status" xml:"status"`
}

func wireWindow(c TrafficCounters) wWindow {
	return wWindow{
		Out:             wVol{c.Out.Rcp, c.Out.Msg, kb(c.Out.KB)},
		In:              wVol{c.In.Rcp, c.In.Msg, kb(c.In.KB)},
		BounceProcessed: c.BounceProcessed, FeedbackLoopProcessed: c.FeedbackLoopProcessed,
	}
}

func wireQT(q QueueTotal) wQT { return wQT{q.Rcp, q.Dom, kb(q.KB)} }

// wireStatus converts a Status to the data part of /status.
func wireStatus(st Status) wStatusData {
	var d wStatusData
	m := &d.MTA
	m.Product.Name, m.Product.Version, m.Product.BuildDate = st.MTA.Product.Name, st.MTA.Product.Version, st.MTA.Product.BuildDate
	m.Product.Revision, m.Product.Bits = st.MTA.Product.Revision, st.MTA.Product.Bits
	m.LAK.Serial, m.LAK.Instances = st.MTA.LAK.Serial, st.MTA.LAK.Instances
	m.OS.Name, m.OS.Version, m.OS.Build = st.MTA.OS.Name, st.MTA.OS.Version, st.MTA.OS.Build
	m.CPU.Type, m.CPU.Count = st.MTA.CPU.Type, st.MTA.CPU.Count
	m.RAM.Real = st.MTA.RAMReal
	m.FullHostName, m.UserString, m.HostID = st.MTA.FullHostName, st.MTA.UserString, st.MTA.HostID
	m.WebUI.Protocol = st.MTA.WebUIProtocol

	w := &d.Status
	w.TimeNow, w.StartupTime, w.ShuttingDown = stamp(st.TimeNow), stamp(st.StartupTime), bit(st.ShuttingDown)
	tr := &w.Traffic
	tr.Total, tr.LastHr, tr.LastMin = wireWindow(st.Traffic.Total), wireWindow(st.Traffic.LastHr), wireWindow(st.Traffic.LastMin)
	tr.TopPerHr, tr.TopPerMin = wireWindow(st.Traffic.TopPerHr), wireWindow(st.Traffic.TopPerMin)
	p := st.Traffic.PerfLastMinIn
	in := &tr.Perf.LastMin.In
	in.Count, in.MailFromTime, in.DataTime, in.TotalTime = p.Count, p.MailFromTime, p.DataTime, p.TotalTime
	w.Conn.SMTPIn = wConn(st.Conn.SMTPIn)
	w.Conn.SMTPOut = wConn(st.Conn.SMTPOut)
	w.Resolver.NamesCached, w.Resolver.QueriesPending, w.Resolver.QueriesActive = st.Resolver.NamesCached, st.Resolver.QueriesPending, st.Resolver.QueriesActive
	q := &w.Queue
	q.SMTP, q.Pipe, q.Discard, q.File = wireQT(st.Queue.SMTP), wireQT(st.Queue.Pipe), wireQT(st.Queue.Discard), wireQT(st.Queue.File)
	q.Alias, q.BounceProcessor, q.FeedbackLoopProcessor = wireQT(st.Queue.Alias), wireQT(st.Queue.BounceProcessor), wireQT(st.Queue.FeedbackLoopProcessor)
	sp := &w.Spool
	sp.InitPct, sp.Dirs, sp.TotalRcp, sp.MaxRcp = st.Spool.InitPct, st.Spool.Dirs, st.Spool.TotalRcp, st.Spool.MaxRcp
	sp.Files.InUse, sp.Files.Recycled, sp.Files.Total = st.Spool.FilesInUse, st.Spool.FilesRecycled, st.Spool.FilesTotal
	w.Status = st.State
	return d
}

type wEvent struct {
	Type string `json:"type" xml:"type"`
	Time string `json:"time" xml:"time"`
	Text string `json:"text" xml:"text"`
}

type wQueue struct {
	Name      string   `json:"name" xml:"name"`
	Rcp       int64    `json:"rcp" xml:"rcp"`
	KB        kb       `json:"kb" xml:"kb"`
	Conn      int64    `json:"conn" xml:"conn"`
	Event     []wEvent `json:"event,omitempty" xml:"event"`
	Paused    yesno    `json:"paused" xml:"paused"`
	Mode      string   `json:"mode" xml:"mode"`
	RetryTime string   `json:"retryTime" xml:"retryTime"`
}

type wQueues struct {
	Title              string   `json:"title" xml:"title"`
	Queue              []wQueue `json:"queue" xml:"queue"`
	TotalRcp           int64    `json:"totalRcp" xml:"totalRcp"`
	TotalQueuesWithRcp int64    `json:"totalQueuesWithRcp" xml:"totalQueuesWithRcp"`
}

// wireQueues renders the listed queues; totals cover every queue.
func wireQueues(listed, all []Queue) wQueues {
	out := wQueues{
		Title: fmt.Sprintf("Top %d queues by number of recipients", len(listed)),
		Queue: make([]wQueue, 0, len(listed)),
	}
	for _, q := range listed {
		w := wQueue{Name: q.Name, Rcp: q.Rcp, KB: kb(q.KB), Conn: q.Conn, Paused: yesno(q.Paused),
			Mode: q.Mode(), RetryTime: stamp(q.RetryTime)}
		for _, e := range q.Events {
			w.Event = append(w.Event, wEvent{e.Type, stamp(e.Time), e.Text})
		}
		out.Queue = append(out.Queue, w)
	}
	for _, q := range all {
		out.TotalRcp += q.Rcp
		if q.Rcp > 0 {
			out.TotalQueuesWithRcp++
		}
	}
	return out
}

type wDomain struct {
	Name string `json:"name" xml:"name"`
	Rcp  int64  `json:"rcp" xml:"rcp"`
	KB   kb     `json:"kb" xml:"kb"`
	Conn int64  `json:"conn" xml:"conn"`
}

type wDomains struct {
	Domain []wDomain `json:"domain" xml:"domain"`
}

func wireDomains(ds []Domain) wDomains {
	out := wDomains{Domain: make([]wDomain, 0, len(ds))}
	for _, d := range ds {
		out.Domain = append(out.Domain, wDomain{d.Name, d.Rcp, kb(d.KB), d.Conn})
	}
	return out
}

type wVMTA struct {
	Name string `json:"name" xml:"name"`
	Dom  int64  `json:"dom" xml:"dom"`
	Rcp  int64  `json:"rcp" xml:"rcp"`
	KB   kb     `json:"kb" xml:"kb"`
	Conn int64  `json:"conn" xml:"conn"`
}

type wVMTAs struct {
	VMTA []wVMTA `json:"vmta" xml:"vmta"`
}

func wireVMTAs(vs []VMTA) wVMTAs {
	out := wVMTAs{VMTA: make([]wVMTA, 0, len(vs))}
	for _, v := range vs {
		out.VMTA = append(out.VMTA, wVMTA{v.Name, v.Domains, v.Rcp, kb(v.KB), v.Conn})
	}
	return out
}

// jsonEnvelope is {"data":…,"status":"success"|"error","message":…}.
type jsonEnvelope struct {
	Data    any    `json:"data"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// xmlEnvelope is <rsp><data>…</data><succ/></rsp>. PowerMTA's error form is
// not documented publicly; on failure the simulator writes <err/> and the
// message, by analogy with <succ/>.
type xmlEnvelope struct {
	XMLName xml.Name  `xml:"rsp"`
	Data    any       `xml:"data"`
	Message string    `xml:"message,omitempty"`
	Succ    *struct{} `xml:"succ"`
	Err     *struct{} `xml:"err"`
}

// encodeJSON renders a one-line JSON envelope.
func encodeJSON(data any, ok bool, msg string) ([]byte, error) {
	st := "success"
	if !ok {
		st = "error"
	}
	b, err := json.Marshal(jsonEnvelope{Data: data, Status: st, Message: msg})
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return b, nil
}

// encodeXML renders a one-line XML envelope.
func encodeXML(data any, ok bool, msg string) ([]byte, error) {
	env := xmlEnvelope{Data: data, Message: msg}
	if ok {
		env.Succ = &struct{}{}
	} else {
		env.Err = &struct{}{}
	}
	b, err := xml.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode xml: %w", err)
	}
	// encoding/xml never self-closes; PowerMTA writes the markers as <succ/>.
	b = bytes.Replace(b, []byte("<succ></succ>"), []byte("<succ/>"), 1)
	b = bytes.Replace(b, []byte("<err></err>"), []byte("<err/>"), 1)
	return b, nil
}
