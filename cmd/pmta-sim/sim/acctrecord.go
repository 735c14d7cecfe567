package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// header23 is the default d/b header of PowerMTA 4.5 and 5.0.
var header23 = []string{
	"type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction", "dsnStatus", "dsnDiag", "dsnMta",
	"bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp", "dlvDestinationIp", "dlvEsmtpAvailable", "dlvSize",
	"vmta", "jobId", "envId", "queue", "vmtaPool",
}

// header33 is the union header of a file that holds every record type.
var header33 = append(slices.Clone(header23),
	"header_Message-Id", "rcvSmtpUser", "rcvSourceIp", "feedbackType", "format", "userAgent", "reportingMta",
	"reportedDomain", "repSourceIp", "dsnReportingMta")

// Column positions in header33 (header23 is its prefix).
const (
	fType = iota
	fTimeLogged
	fTimeQueued
	fOrig
	fRcpt
	fOrcpt
	fDsnAction
	fDsnStatus
	fDsnDiag
	fDsnMta
	fBounceCat
	fSrcType
	fSrcMta
	fDlvType
	fDlvSourceIP
	fDlvDestinationIP
	fDlvEsmtpAvailable
	fDlvSize
	fVMTA
	fJobID
	fEnvID
	fQueue
	fVMTAPool
	fMessageID
	fRcvSMTPUser
	fRcvSourceIP
	fFeedbackType
	fFormat
	fUserAgent
	fReportingMTA
	fReportedDomain
	fRepSourceIP
	fDsnReportingMTA
	nFields
)

// acctTimeLayout is PowerMTA's iso-times format.
const acctTimeLayout = "2006-01-02 15:04:05-0700"

// allAcctTypes are the record types PowerMTA can log, in the order of its docs.
var allAcctTypes = []string{"d", "b", "t", "tq", "r", "f", "rb", "rs"}

// acctQueue is what the generator needs to know about one queue.
type acctQueue struct {
	qi            int
	domain, vmta  string
	class         int
	ip, pool      string
	mxHost, mxIP  string
	transactional bool
}

// acctDist is the model's traffic mix at one moment: which type, and for each
// type which queue, a record is likely to be.
type acctDist struct {
	queues []acctQueue
	types  []string
	typeCW []float64            // cumulative type weights
	cw     map[string][]float64 // cumulative queue weights per type
}

// acctDist reads the mix for the enabled types. The caller holds mu.
func (s *Sim) acctDist(types []string) *acctDist {
	n := len(s.queues)
	d := &acctDist{queues: make([]acctQueue, n), types: types, cw: map[string][]float64{}}
	w := map[string][]float64{}
	for _, t := range allAcctTypes {
		w[t] = make([]float64, n)
	}
	var dlvSum float64
	for i := range s.queues {
		q := &s.queues[i]
		dm, v := &s.domains[q.di], &s.vmtas[q.vi]
		d.queues[i] = acctQueue{qi: i, domain: dm.name, vmta: v.name, class: dm.class, ip: v.ip,
			pool: poolDefs[v.pool].name, mxHost: dm.mxHost, mxIP: dm.mxIP, transactional: v.pool == poolTransactional}
		dlvSum += s.seg.share[i]
	}
	for i := range s.queues {
		q := &s.queues[i]
		dm := &s.domains[q.di]
		share := s.seg.share[i]
		if dlvSum == 0 {
			share = q.share // everything paused: still write something plausible
		}
		w["d"][i] = share
		w["b"][i] = share * s.seg.bncRatio[i]
		w["t"][i] = share * s.seg.defRatio[i]
		w["tq"][i] = share * s.seg.defRatio[i] * (0.1 + 3*s.seg.backoffP[i])
		w["r"][i] = q.share
		switch dm.class {
		case classMicrosoft, classYahoo, classAOL:
			w["f"][i] = q.share
		}
		if dm.pool == poolGeneral || dm.pool == poolTransactional {
			w["rb"][i], w["rs"][i] = q.share, q.share
		}
	}
	sum := func(x []float64) float64 {
		var t float64
		for _, v := range x {
			t += v
		}
		return t
	}
	dTotal := sum(w["d"])
	rel := map[string]float64{"d": dTotal, "b": sum(w["b"]), "t": sum(w["t"]), "tq": sum(w["tq"]),
		"r": 0.1 * dTotal, "f": 0.002 * dTotal, "rb": 0.008 * dTotal, "rs": 0.003 * dTotal}
	var acc float64
	for _, t := range types {
		if sum(w[t]) == 0 {
			w[t] = slices.Clone(w["r"]) // a type with no natural source: spread by volume
		}
		acc += rel[t]
		d.typeCW = append(d.typeCW, acc)
		cw := make([]float64, n)
		var c float64
		for i, v := range w[t] {
			c += v
			cw[i] = c
		}
		d.cw[t] = cw
	}
	return d
}

// pick draws an index from cumulative weights.
func pick(r *rand.Rand, cw []float64) int {
	x := r.Float64() * cw[len(cw)-1]
	i, _ := slices.BinarySearch(cw, x)
	return min(i, len(cw)-1)
}

// acctEffect is what written records do to the model's counters.
type acctEffect struct {
	dlv, def, bnc []int64 // per queue
	c             counts
}

func newAcctEffect(n int) *acctEffect {
	return &acctEffect{dlv: make([]int64, n), def: make([]int64, n), bnc: make([]int64, n)}
}

// apply adds the effect to the model at the current second.
func (s *Sim) applyAcct(e *acctEffect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	for i := range s.queues {
		s.queues[i].delivered += e.dlv[i]
		s.queues[i].deferred += e.def[i]
		s.queues[i].bounced += e.bnc[i]
	}
	s.addNow(e.c)
}

// recInfo is what a generated record means to the model.
type recInfo struct {
	key  AcctKey
	qi   int
	size int
}

// add counts one written record into the effect.
func (e *acctEffect) add(ri recInfo) {
	kb := int64(ri.size*10/1024 + 1)
	switch ri.key.Type {
	case "d":
		e.dlv[ri.qi]++
		e.c[cOutRcp]++
		e.c[cOutKB] += kb
	case "b":
		e.bnc[ri.qi]++
	case "t":
		e.def[ri.qi]++
	case "r":
		e.c[cInRcp]++
		e.c[cInMsg]++
		e.c[cInKB] += kb
	case "f":
		e.c[cFBLProc]++
	case "rb", "rs":
		e.c[cBounceProc]++
	}
}

// genRecord fills rec (len nFields) with one record of type typ logged at at.
func genRecord(r *rand.Rand, d *acctDist, typ string, at time.Time, rec []string) recInfo {
	for i := range rec {
		rec[i] = ""
	}
	q := d.queues[pick(r, d.cw[typ])]
	rcpt := rcptFor(r, q.domain)
	queued := at.Add(-time.Duration(2+r.IntN(900)) * time.Second)
	size := 40000 + r.IntN(20000)
	rec[fType] = typ
	rec[fTimeLogged] = at.Format(acctTimeLayout)
	rec[fRcpt] = rcpt
	rec[fVMTA] = q.vmta
	if q.transactional {
		size = 6000 + r.IntN(8000)
		rec[fOrig] = "alerts@tx.shop.example"
		rec[fSrcType] = "api"
		rec[fEnvID] = "ord-" + strconv.Itoa(10000+r.IntN(90000))
	} else {
		rec[fOrig] = "bounce-" + randHex(r, 4) + "@em.shop.example"
		rec[fSrcType] = "smtp"
		inj := 11 + r.IntN(2)
		rec[fSrcMta] = fmt.Sprintf("inject%02d.shop.example (10.20.0.%d)", inj-10, inj)
		rec[fJobID] = campaigns[r.IntN(len(campaigns))] + queued.Format("-0102")
	}
	msgID := "<" + queued.UTC().Format("20060102150405") + "." + randHex(r, 4) + "@em.shop.example>"
	rec[fMessageID] = msgID
	delivery := func() {
		rec[fTimeQueued] = queued.Format(acctTimeLayout)
		rec[fDsnMta] = q.mxHost + " (" + q.mxIP + ")"
		rec[fDlvType] = "smtp"
		rec[fDlvSourceIP] = q.ip
		rec[fDlvDestinationIP] = q.mxIP
		rec[fDlvEsmtpAvailable] = esmtpFor(q.class)
		rec[fDlvSize] = strconv.Itoa(size)
		rec[fQueue] = q.domain + "/" + q.vmta
		rec[fVMTAPool] = q.pool
	}
	ri := recInfo{key: AcctKey{Type: typ, Domain: q.domain, VMTA: q.vmta}, qi: q.qi, size: size}
	switch typ {
	case "d":
		delivery()
		rec[fDsnAction], rec[fDsnStatus], rec[fBounceCat] = "relayed", "2.0.0 (success)", "success"
		rec[fDsnDiag] = deliveredDiag(r, q.class, q.domain, msgID, size, at.Unix())
	case "b":
		delivery()
		b := bounceFor(r, q.class, q.domain, rcpt, q.ip, q.mxHost)
		rec[fDsnAction], rec[fDsnStatus], rec[fDsnDiag], rec[fBounceCat] = "failed", b.status, b.diag, b.cat
		if b.expired {
			rec[fTimeQueued] = at.Add(-48*time.Hour - time.Duration(r.IntN(600))*time.Second).Format(acctTimeLayout)
		}
	case "t":
		delivery()
		rec[fDsnAction] = "delayed"
		rec[fDsnDiag], rec[fDsnStatus], rec[fBounceCat] = transientFor(r, q.class, q.ip, q.mxHost, q.mxIP)
		if q.class == classYahoo || q.class == classAOL {
			rec[fDlvEsmtpAvailable] = "" // rejected at connect, before EHLO
		}
	case "tq":
		// Queue-wide: no recipient, message or injection fields.
		rec[fDsnMta] = q.mxHost + " (" + q.mxIP + ")"
		rec[fDsnDiag], rec[fDsnStatus], rec[fBounceCat] = transientFor(r, q.class, q.ip, q.mxHost, q.mxIP)
		rec[fDlvType], rec[fDlvSourceIP], rec[fDlvDestinationIP] = "smtp", q.ip, q.mxIP
		rec[fQueue], rec[fVMTAPool] = q.domain+"/"+q.vmta, q.pool
		for _, f := range []int{fOrig, fRcpt, fSrcType, fSrcMta, fJobID, fEnvID, fMessageID} {
			rec[f] = ""
		}
	case "r":
		rec[fTimeQueued] = rec[fTimeLogged] // received is when it was queued
		rec[fMessageID] = "<" + at.UTC().Format("20060102150405") + "." + randHex(r, 4) + "@em.shop.example>"
		rec[fDlvSize] = strconv.Itoa(size)
		if !q.transactional {
			rec[fRcvSMTPUser], rec[fRcvSourceIP] = "campaign-app", "10.20.0.11"
		}
	case "f":
		ua, reporter, rmta := fblSource(q.class, q.domain)
		rec[fSrcType], rec[fSrcMta], rec[fEnvID] = "", "", ""
		rec[fRcvSourceIP], rec[fFeedbackType], rec[fFormat], rec[fUserAgent] = reporter, "abuse", "arf", ua
		rec[fReportingMTA], rec[fReportedDomain], rec[fRepSourceIP] = rmta, "em.shop.example", q.ip
	case "rb", "rs":
		rec[fSrcType], rec[fSrcMta], rec[fEnvID], rec[fVMTA] = "", "", "", ""
		ri.key.VMTA = ""
		if typ == "rb" {
			rec[fDsnAction], rec[fDsnStatus], rec[fBounceCat] = "failed", "5.1.1 (bad destination mailbox address)", "bad-mailbox"
			rec[fDsnDiag] = "smtp;550 5.1.1 <" + rcpt + ">... User unknown"
			rec[fDsnMta] = "mx2." + q.domain
			rec[fDsnReportingMTA] = "dns; mail-relay." + q.domain
		} else {
			rec[fDsnAction], rec[fDsnStatus], rec[fBounceCat] = "delayed", "4.4.1 (no answer from host)", "no-answer-from-host"
			rec[fDsnDiag] = fmt.Sprintf("X-Postfix; connect to backend.%s[10.1.%d.%d]:25: Connection timed out", q.domain, r.IntN(8), 2+r.IntN(250))
			rec[fDsnMta] = "backend." + q.domain
			rec[fDsnReportingMTA] = "dns; mx01." + q.domain
		}
		rec[fRcvSourceIP] = q.mxIP
	}
	return ri
}
