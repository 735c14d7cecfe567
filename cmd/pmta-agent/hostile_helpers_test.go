package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/otlp/otelcoltest"
)

// hostileWriter writes the records a hostile sender or a careless operator
// puts into accounting files, through the simulator's writer, and keeps
// what the agent must make of them: counted under a safe tag set,
// malformed, or out of range.
type hostileWriter struct {
	w                     *sim.AcctWriter
	counted, refused      map[sim.AcctKey]int64
	malformed, outOfRange int64
}

func newHostileWriter(w *sim.AcctWriter) *hostileWriter {
	return &hostileWriter{w: w, counted: map[sim.AcctKey]int64{}, refused: map[sim.AcctKey]int64{}}
}

func (h *hostileWriter) total() int64 { return h.countedTotal() + h.malformed + h.outOfRange }

func (h *hostileWriter) countedTotal() int64 {
	var n int64
	for _, c := range h.counted {
		n += c
	}
	return n
}

// hostileKind is one kind of hostile record: the values it writes and the
// tag values the agent must count it under ("" for a refused one).
type hostileKind struct {
	typ, queue, diag  string
	at                time.Duration // from now
	year              int           // an absurd year instead of at
	wantDomain        string
	malformed, future bool
}

var hostileKinds = []hostileKind{
	{typ: "b", queue: "caf\xe9.example/vmta-hostile", diag: "smtp;550 5.1.1 unknown user caf\xe9 \\ C:\\", wantDomain: "caf\uFFFD.example"},
	{typ: "t", queue: `endbs\\/vmta-hostile`, diag: "smtp;421 try again\\", wantDomain: `endbs\` + "\uFFFD"},
	{typ: "b", queue: "ctl\x01\x7fchars.example/vmta-hostile", diag: "smtp;550 \x00\x1b[31mred", wantDomain: "ctl  chars.example"},
	{typ: "d", queue: "future.example/vmta-hostile", at: 48 * time.Hour, future: true},
	{typ: "d", queue: "ancient.example/vmta-hostile", year: 1000},
	{typ: "b", queue: "quote.example/vmta-hostile", diag: "smtp;550 never closed", malformed: true},
}

// write writes the i-th hostile record (kinds in turn) logged at now.
func (h *hostileWriter) write(i int, now time.Time) error {
	k := hostileKinds[i%len(hostileKinds)]
	kind := "acct"
	if k.typ == "t" || k.typ == "tq" {
		kind = "diag"
	}
	header := h.w.Header(kind)
	at := now.Add(k.at).UTC()
	ts := at.Format("2006-01-02 15:04:05-0700")
	if k.year != 0 {
		ts = fmt.Sprintf("%04d-01-01 00:00:00+0000", k.year)
	}
	rec := make([]string, len(header))
	for j, col := range header {
		switch col {
		case "type":
			rec[j] = k.typ
		case "timeLogged":
			rec[j] = ts
		case "rcpt":
			rec[j] = "user@" + strings.SplitN(k.queue, "/", 2)[0]
		case "dsnStatus":
			rec[j] = map[string]string{"d": "2.0.0 (success)", "t": "4.0.0 (deferred)"}[k.typ]
			if rec[j] == "" {
				rec[j] = "5.1.1 (bad destination mailbox address)"
			}
		case "dsnDiag":
			rec[j] = k.diag
		case "vmta":
			rec[j] = "vmta-hostile"
		case "queue":
			rec[j] = k.queue
		}
	}
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	if err := cw.Write(rec); err != nil {
		return err
	}
	cw.Flush()
	line := b.Bytes()
	key := sim.AcctKey{Type: k.typ, Domain: k.wantDomain, VMTA: "vmta-hostile"}
	switch {
	case k.malformed:
		// The last field opens a quote that is never closed.
		line = append(bytes.TrimRight(line, "\r\n"), []byte(`,"smtp;550 never closed`+"\r\n")...)
		line = bytes.Replace(line, []byte(",,"), []byte(","), 1) // keep the field count of the header
		h.malformed++
		h.refused[sim.AcctKey{Type: k.typ, Domain: "quote.example", VMTA: "vmta-hostile"}]++
	case k.future || k.year != 0:
		h.outOfRange++
		h.refused[sim.AcctKey{Type: k.typ, Domain: strings.SplitN(k.queue, "/", 2)[0], VMTA: "vmta-hostile"}]++
	default:
		h.counted[key]++
	}
	return h.w.WriteRaw(kind, now, line)
}

// collectorAcctDedup sums the collector's pmta.acct_full.count data points per
// (type, domain, vmta), keeping one data point per series and interval, as
// InfluxDB keeps one point per series and time: an agent killed before its
// checkpoint moved sends an interval again, with the same values.
func collectorAcctDedup(t *testing.T, col *otelcoltest.Collector) (map[sim.AcctKey]int64, int64) {
	t.Helper()
	pts, err := col.Points()
	if err != nil {
		t.Fatalf("collector output: %v", err)
	}
	last := map[string]otelcoltest.Point{}
	for _, p := range pts {
		if p.Name != "pmta.acct_full.count" {
			continue
		}
		keys := make([]string, 0, len(p.Attributes))
		for k, v := range p.Attributes {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		last[fmt.Sprintf("%s|%d|%d", strings.Join(keys, ","), p.Start.UnixNano(), p.Time.UnixNano())] = p
	}
	out := map[sim.AcctKey]int64{}
	var total int64
	for _, p := range last {
		k := sim.AcctKey{Type: p.Attributes["type"], Domain: p.Attributes["domain"], VMTA: p.Attributes["vmta"]}
		out[k] += p.Int
		total += p.Int
	}
	return out, total
}
