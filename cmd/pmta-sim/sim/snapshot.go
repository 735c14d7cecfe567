package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Snapshot is the model at one second, in typed Go values. Every handler
// renders from a Snapshot, so the numbers here are exactly what was served.
type Snapshot struct {
	Status  Status
	Queues  []Queue  // every queue, by recipients descending, then name
	Domains []Domain // every domain, by recipients descending, then name
	VMTAs   []VMTA   // every vmta, by recipients descending, then name
	Seed    SeedStatus
}

// Status is the /status document.
type Status struct {
	MTA          MTA
	TimeNow      time.Time
	StartupTime  time.Time
	ShuttingDown bool
	Traffic      Traffic
	Conn         Conn
	Resolver     Resolver
	Queue        QueueTotals
	Spool        Spool
	State        string // "running"
}

// MTA describes the product and host (data.mta).
type MTA struct {
	Product       Product
	LAK           LAK
	OS            OS
	CPU           CPU
	RAMReal       int64 // KB
	FullHostName  string
	UserString    string
	HostID        int64
	WebUIProtocol int64
}

// Product is data.mta.product.
type Product struct {
	Name, Version, BuildDate, Revision string
	Bits                               int64
}

// LAK is the licence (data.mta.lak).
type LAK struct {
	Serial    string
	Instances int64
}

// OS is data.mta.os.
type OS struct{ Name, Version, Build string }

// CPU is data.mta.cpu.
type CPU struct {
	Type  string
	Count int64
}

// Traffic holds the counters since start and the rolling windows.
type Traffic struct {
	Total, LastHr, LastMin, TopPerHr, TopPerMin TrafficCounters
	PerfLastMinIn                               Perf
}

// TrafficCounters is one traffic window.
type TrafficCounters struct {
	Out, In                                Volume
	BounceProcessed, FeedbackLoopProcessed int64
}

// Volume counts recipients, messages and kilobytes.
type Volume struct {
	Rcp, Msg int64
	KB       float64
}

// Perf is traffic.perf.lastMin.in.
type Perf struct{ Count, MailFromTime, DataTime, TotalTime int64 }

// Conn is the connection gauge.
type Conn struct{ SMTPIn, SMTPOut ConnCounts }

// ConnCounts is current, configured maximum and high-water mark.
type ConnCounts struct{ Cur, Max, Top int64 }

// Resolver is the DNS resolver state.
type Resolver struct{ NamesCached, QueriesPending, QueriesActive int64 }

// QueueTotals holds the totals per queue type.
type QueueTotals struct {
	SMTP, Pipe, Discard, File, Alias, BounceProcessor, FeedbackLoopProcessor QueueTotal
}

// QueueTotal is recipients, domains and kilobytes of one queue type.
type QueueTotal struct {
	Rcp, Dom int64
	KB       float64
}

// Spool is the spool state.
type Spool struct {
	InitPct, Dirs                         int64
	FilesInUse, FilesRecycled, FilesTotal int64
	TotalRcp, MaxRcp                      int64
}

// Queue is one domain/vmta queue.
type Queue struct {
	Name, Domain, VMTA string
	Rcp                int64
	KB                 float64
	Conn               int64
	Paused, Backoff    bool
	RetryTime          time.Time // zero when none
	Events             []Event   // newest first
	// Cumulative since start (or reset counters); the seed dialect sums them.
	Delivered, Deferred, Bounced int64
}

// Mode is "backoff" or "normal", as the monitor prints it.
func (q Queue) Mode() string {
	if q.Backoff {
		return "backoff"
	}
	return "normal"
}

// Event is one entry of a queue's last errors.
type Event struct {
	Type string // "error"
	Time time.Time
	Text string
}

// Domain is one recipient domain, summed over its queues.
type Domain struct {
	Name, ISP                    string
	Rcp                          int64
	KB                           float64
	Conn                         int64
	Delivered, Deferred, Bounced int64
}

// VMTA is one VirtualMTA, summed over its queues.
type VMTA struct {
	Name                         string
	Rcp                          int64
	KB                           float64
	Conn                         int64
	Domains                      int64 // domains with queued recipients
	MsgsPerSec                   float64
	SourceIP, Pool               string
	Delivered, Deferred, Bounced int64
}

// SeedStatus is the seed dialect's /status.json.
type SeedStatus struct {
	QueueDepth        int64
	MsgsPerSec        float64
	ActiveConnections int64
	ConnectionsIn     int64
	ConnectionsOut    int64
}

// snapshot builds the Snapshot at s.last. The caller holds mu and has advanced.
func (s *Sim) snapshot() Snapshot {
	t := s.last
	at := func(sec int64) time.Time { return time.Unix(sec, 0).In(s.loc) }
	dlv, dfr, bnc := s.segParts()

	var snap Snapshot
	snap.Queues = make([]Queue, len(s.queues))
	doms := make([]Domain, len(s.domains))
	vms := make([]VMTA, len(s.vmtas))
	domKB := make([]int64, len(s.domains))
	vmKB := make([]int64, len(s.vmtas))
	vmShare := make([]float64, len(s.vmtas))
	var totRcp, totKB, totConn, domsWithRcp int64
	for i := range doms {
		doms[i].Name, doms[i].ISP = s.domains[i].name, s.domains[i].isp
	}
	for i := range vms {
		v := &s.vmtas[i]
		vms[i].Name, vms[i].SourceIP, vms[i].Pool = v.name, v.ip, poolDefs[v.pool].name
	}
	var shareSum float64
	for qi := range s.queues {
		q := &s.queues[qi]
		st := s.stateAt(qi, t)
		out := Queue{
			Name: q.name, Domain: s.domains[q.di].name, VMTA: s.vmtas[q.vi].name,
			Rcp: st.rcp, KB: tenths(st.kb), Conn: st.conn, Paused: q.paused, Backoff: st.backoff,
			Delivered: q.delivered + dlv[qi], Deferred: q.deferred + dfr[qi], Bounced: q.bounced + bnc[qi],
		}
		if st.retry != 0 {
			out.RetryTime = at(st.retry)
		}
		for _, e := range st.events {
			out.Events = append(out.Events, Event{Type: "error", Time: at(e.t), Text: s.eventText(qi, e)})
		}
		snap.Queues[qi] = out

		d, v := &doms[q.di], &vms[q.vi]
		d.Rcp += st.rcp
		d.Conn += st.conn
		d.Delivered += out.Delivered
		d.Deferred += out.Deferred
		d.Bounced += out.Bounced
		domKB[q.di] += st.kb
		v.Rcp += st.rcp
		v.Conn += st.conn
		v.Delivered += out.Delivered
		v.Deferred += out.Deferred
		v.Bounced += out.Bounced
		vmKB[q.vi] += st.kb
		if st.rcp > 0 {
			v.Domains++
		}
		vmShare[q.vi] += s.seg.share[qi]
		shareSum += s.seg.share[qi]
		totRcp += st.rcp
		totKB += st.kb
		totConn += st.conn
	}
	perSec := round3(float64(s.sum60[cOutRcp]) / 60)
	for i := range doms {
		doms[i].KB = tenths(domKB[i])
		if doms[i].Rcp > 0 {
			domsWithRcp++
		}
	}
	for i := range vms {
		vms[i].KB = tenths(vmKB[i])
		if shareSum > 0 {
			vms[i].MsgsPerSec = round3(perSec * vmShare[i] / shareSum)
		}
	}
	byRcp := func(ar, br int64, an, bn string) int {
		if c := cmp.Compare(br, ar); c != 0 {
			return c
		}
		return cmp.Compare(an, bn)
	}
	slices.SortFunc(snap.Queues, func(a, b Queue) int { return byRcp(a.Rcp, b.Rcp, a.Name, b.Name) })
	slices.SortFunc(doms, func(a, b Domain) int { return byRcp(a.Rcp, b.Rcp, a.Name, b.Name) })
	slices.SortFunc(vms, func(a, b VMTA) int { return byRcp(a.Rcp, b.Rcp, a.Name, b.Name) })
	snap.Domains, snap.VMTAs = doms, vms

	snap.Status = s.status(t, totRcp, totKB, totConn, domsWithRcp)
	st := &snap.Status
	snap.Seed = SeedStatus{
		QueueDepth:        st.Queue.SMTP.Rcp,
		MsgsPerSec:        perSec,
		ConnectionsIn:     st.Conn.SMTPIn.Cur,
		ConnectionsOut:    st.Conn.SMTPOut.Cur,
		ActiveConnections: st.Conn.SMTPIn.Cur + st.Conn.SMTPOut.Cur,
	}
	return snap
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// status builds the /status document; it records the connection high-water
// marks, the only state a read changes.
func (s *Sim) status(t, rcp, kb, conn, doms int64) Status {
	h := hash3(s.seed, 0x57a7, uint64(t/10))
	h2 := mix(h)
	uptime := t - s.startup
	connIn := int64(float64(4+h%12) * s.effRate / 50)
	s.connInTop = max(s.connInTop, connIn)
	s.connOutTop = max(s.connOutTop, conn)
	bpRcp := int64(h2 % 4)
	fbRcp := int64(mix(h2) % 2)
	total := rcp + bpRcp + fbRcp
	inUse := total/4 + 180 + int64(h%40)
	recycled := 280 + int64(h2%60)
	pending := int64(h % 6)
	dataTime := 30 + int64(h2%15)
	qt := func(r, kbTenthsPerRcp int64) QueueTotal {
		var d int64
		if r > 0 {
			d = 1
		}
		return QueueTotal{Rcp: r, Dom: d, KB: tenths(r * kbTenthsPerRcp)}
	}
	return Status{
		MTA: MTA{
			Product: Product{Name: "PowerMTA", Version: "5.0r8", BuildDate: "2023-03-02 11:42:10",
				Revision: "v5_0r8@230302.3c1d9e0", Bits: 64},
			LAK:           LAK{Serial: fmt.Sprintf("%06d", s.seed%1000000), Instances: 1},
			OS:            OS{Name: "Linux", Version: "4.18.0-477.13.1.el8_8.x86_64", Build: "Rocky Linux release 8.8 (Green Obsidian)"},
			CPU:           CPU{Type: "x86_64", Count: 16},
			RAMReal:       65551848,
			FullHostName:  s.hostname,
			WebUIProtocol: 1,
		},
		TimeNow:     time.Unix(t, 0).In(s.loc),
		StartupTime: time.Unix(s.startup, 0).In(s.loc),
		Traffic: Traffic{
			Total: window2traffic(s.tot), LastHr: window2traffic(s.sum3600), LastMin: window2traffic(s.sum60),
			TopPerHr: window2traffic(s.top3600), TopPerMin: window2traffic(s.top60),
			PerfLastMinIn: Perf{Count: s.sum60[cInMsg], MailFromTime: 2, DataTime: dataTime, TotalTime: dataTime + 10 + int64(h%6)},
		},
		Conn: Conn{
			SMTPIn:  ConnCounts{Cur: connIn, Max: 400, Top: s.connInTop},
			SMTPOut: ConnCounts{Cur: conn, Max: 3000, Top: s.connOutTop},
		},
		Resolver: Resolver{NamesCached: min(25000, 800+uptime/15) + int64(h%300), QueriesPending: pending, QueriesActive: pending},
		Queue: QueueTotals{
			SMTP:                  QueueTotal{Rcp: rcp, Dom: doms, KB: tenths(kb)},
			BounceProcessor:       qt(bpRcp, 183),
			FeedbackLoopProcessor: qt(fbRcp, 42),
		},
		Spool: Spool{InitPct: 100, Dirs: 4, FilesInUse: inUse, FilesRecycled: recycled,
			FilesTotal: 24576 * ((inUse + recycled + 24575) / 24576), TotalRcp: total, MaxRcp: 5000000},
		State: "running",
	}
}

func window2traffic(c counts) TrafficCounters {
	return TrafficCounters{
		Out:                   Volume{Rcp: c[cOutRcp], Msg: c[cOutRcp], KB: tenths(c[cOutKB])},
		In:                    Volume{Rcp: c[cInRcp], Msg: c[cInMsg], KB: tenths(c[cInKB])},
		BounceProcessed:       c[cBounceProc],
		FeedbackLoopProcessed: c[cFBLProc],
	}
}
