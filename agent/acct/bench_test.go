package acct

import (
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// benchData is a generated 23-column d/b/t mix (70 % d, 20 % t, 10 % b), one
// record every 10 ms, so that intervals open and close as in a busy server.
func benchData(b *testing.B, n int) ([]byte, int) {
	b.Helper()
	data, _ := genFile(42, n, testStart, 10*time.Millisecond, true)
	return data, n
}

// BenchmarkParse measures scanning and mapping records onto the header.
func BenchmarkParse(b *testing.B) {
	data, n := benchData(b, 20000)
	s := newScanner(DefaultConfig().MaxLineBytes)
	var r record
	b.SetBytes(int64(len(data)) / int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	pos, parsed := 0, 0
	var h *header
	for b.Loop() {
		if pos >= len(data) {
			pos = 0
		}
		m, _ := s.scan(data[pos:], false)
		pos += m
		if isHeaderRow(s.fields) {
			if h == nil {
				h, _ = headerFromFields(s.fields)
			}
			continue
		}
		if err := parseRecord(h, s.fields, &r); err != nil {
			b.Fatal(err)
		}
		parsed++
	}
	b.ReportMetric(float64(parsed)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAggregate measures adding parsed records to intervals.
func BenchmarkAggregate(b *testing.B) {
	data, _ := benchData(b, 20000)
	s := newScanner(DefaultConfig().MaxLineBytes)
	var recs []record
	var h *header
	for pos := 0; pos < len(data); {
		m, _ := s.scan(data[pos:], false)
		pos += m
		if isHeaderRow(s.fields) {
			h, _ = headerFromFields(s.fields)
			continue
		}
		var r record
		if err := parseRecord(h, s.fields, &r); err != nil {
			b.Fatal(err)
		}
		// Own the bytes, as the scanner's buffer is reused.
		for _, f := range []*[]byte{&r.domain, &r.vmta, &r.pool, &r.sourceIP, &r.bounceCat, &r.dsnStatus, &r.dsnDiag} {
			*f = append([]byte(nil), *f...)
		}
		recs = append(recs, r)
	}
	a := newAggregator(DefaultConfig().Interval, DefaultConfig().TopDiag, agent.NewISPMap(nil))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(recs) {
			i = 0
			a.closeAll()
			a.closedSet = false
		}
		a.add(&recs[i])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkParseAggregate is the whole hot path as the tailer and backfill
// run it: bytes in, records scanned, parsed and summed, intervals closed into
// points. One op is one pass over a 20,000-record buffer; records/s and
// ns/record are the figures to read.
func BenchmarkParseAggregate(b *testing.B) {
	data, n := benchData(b, 20000)
	a := newAggregator(DefaultConfig().Interval, DefaultConfig().TopDiag, agent.NewISPMap(nil))
	p := newLineParser(a, DefaultConfig().MaxLineBytes, timeRange{}, nil, nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c := &fileCursor{name: "bench"}
		if used, _, _ := p.consume(c, data, false, noUntil); used != len(data) {
			b.Fatalf("consumed %d of %d bytes", used, len(data))
		}
		a.closeAll()
		a.closedSet = false // the next pass is new data, not late data
	}
	if p.malformed != 0 {
		b.Fatalf("%d malformed", p.malformed)
	}
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(a.records)/el, "records/s")
	b.ReportMetric(el*1e9/float64(a.records), "ns/record")
	_ = n
}

// TestParseAggregateNoAllocs checks the steady state: once tag values and
// diag patterns are interned and the intervals exist, records cost no
// allocation at all.
func TestParseAggregateNoAllocs(t *testing.T) {
	data, _ := genFile(42, 2000, testStart, 10*time.Millisecond, true)
	a := newAggregator(DefaultConfig().Interval, DefaultConfig().TopDiag, agent.NewISPMap(nil))
	p := newLineParser(a, DefaultConfig().MaxLineBytes, timeRange{}, nil, nil)
	hdrEnd := len(header23) + 2
	c := &fileCursor{name: "alloc"}
	p.consume(c, data, false, noUntil) // warm up
	body := data[hdrEnd:]
	allocs := testing.AllocsPerRun(20, func() {
		p.consume(c, body, false, noUntil)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per pass of 2000 records, want 0", allocs)
	}
}
