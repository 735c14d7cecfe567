package poller

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedCorpus adds the recorded documents and a few broken bodies.
func seedCorpus(f *testing.F, files ...string) {
	f.Helper()
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", " ", "<html><body>forbidden</body></html>", "{}", "[]", "null", "<rsp/>",
		`{"data":{"queue":{"name":1}},"status":"success"}`, "\xef\xbb\xbf{", "a,b\n\"x"} {
		f.Add([]byte(s))
	}
}

// fuzzListing checks the promise every listing parser makes: an error, or
// rows that each name something and carry no unreadable value.
func fuzzListing(t *testing.T, parse func(io.Reader) (listing, error), data []byte) {
	l, err := parse(bytes.NewReader(data))
	if err != nil {
		if len(l.rows) != 0 || l.skipped != 0 {
			t.Fatalf("error %v with a non-empty listing", err)
		}
		return
	}
	if l.skipped < 0 {
		t.Fatalf("skipped = %d", l.skipped)
	}
	for _, r := range l.rows {
		if !r.valid() {
			t.Fatalf("invalid row returned: %+v", r)
		}
	}
	// Building points from any accepted listing must not panic either.
	queuePoints(l.rows, time.Unix(0, 0))
	domainPoints(l.rows, time.Unix(0, 0))
	vmtaPoints(l.rows, time.Unix(0, 0))
}

func fuzzStatus(t *testing.T, parse func(io.Reader) (status, error), data []byte) {
	s, err := parse(bytes.NewReader(data))
	if err != nil {
		return
	}
	fields, _ := s.fields()
	for _, f := range fields {
		switch f.Value.(type) {
		case int64, float64:
		default:
			t.Fatalf("field %s has type %T", f.Key, f.Value)
		}
	}
	var r rateState
	r.observe(s.counters(), time.Unix(0, 0))
	r.observe(s.counters(), time.Unix(60, 0))
}

func FuzzParseStatusJSON(f *testing.F) {
	seedCorpus(f, "pmta-json/status.json", "pmta-quirks/status.json")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzStatus(t, parseStatusJSON, data) })
}

func FuzzParseStatusXML(f *testing.F) {
	seedCorpus(f, "pmta-xml/status.xml")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzStatus(t, parseStatusXML, data) })
}

func FuzzParseListJSON(f *testing.F) {
	seedCorpus(f, "pmta-json/queues.json", "pmta-json/domains.json", "pmta-json/vmtas.json",
		"pmta-quirks/queues.json", "pmta-quirks/domains.json", "pmta-quirks/vmtas.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzListing(t, parseQueuesJSON, data)
		fuzzListing(t, parseDomainsJSON, data)
		fuzzListing(t, parseVMTAsJSON, data)
	})
}

func FuzzParseListXML(f *testing.F) {
	seedCorpus(f, "pmta-xml/queues.xml", "pmta-xml/domains.xml", "pmta-xml/vmtas.xml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzListing(t, parseQueuesXML, data)
		fuzzListing(t, parseDomainsXML, data)
		fuzzListing(t, parseVMTAsXML, data)
	})
}

func FuzzParseSeedStatus(f *testing.F) {
	seedCorpus(f, "seed/status.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSeedStatus(bytes.NewReader(data))
		if err != nil {
			return
		}
		if !s.QueueDepth.ok && !s.MsgsPerSec.ok && !s.ActiveConnections.ok {
			t.Fatalf("accepted without a readable documented key: %+v", s)
		}
		if n := len(s.fields()); n+len(s.missing)+len(s.unreadable) < 3 {
			t.Fatalf("%d fields, missing %v, unreadable %v: a documented key is unaccounted for", n, s.missing, s.unreadable)
		}
	})
}

func FuzzParseSeedCSV(f *testing.F) {
	seedCorpus(f, "seed/queue.csv", "seed/domain.csv", "seed/vmta.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzListing(t, parseSeedQueues, data)
		fuzzListing(t, parseSeedDomains, data)
		fuzzListing(t, parseSeedVMTAs, data)
	})
}
