package acct

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

var testStart = time.Date(2024, 1, 15, 10, 23, 40, 0, time.FixedZone("", -5*3600))

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2024-01-15 10:23:45-0500", 1705332225, true},
		{"2014-08-24 16:00:14+0530", 1408876214, true},
		{"2012-06-12 00:11:57-0500", 1339477917, true},
		{"2024-01-15T15:23:45Z", 1705332225, true},
		{"2024-01-15 15:23:45", 1705332225, true},
		{"2024-01-15 10:23:45.123 -05:00", 1705332225, true},
		{"2024-01-15 16:23:45+01", 1705332225, true},
		{"1705332225", 1705332225, true},
		{"1178807903", 1178807903, true},
		{" 1705332225.5 ", 1705332225, true},
		{"2024-02-29 00:00:00+0000", 1709164800, true},
		{"", 0, false},
		{"yesterday", 0, false},
		{"2023-02-29 00:00:00+0000", 0, false},
		{"2024-13-01 00:00:00+0000", 0, false},
		{"2024-01-15 24:00:00+0000", 0, false},
		{"2024-01-15 10:23:45+05", 1705296225, true},
		{"2024-01-15 10:23:45+0", 0, false},
		{"2024-01-15 10:23:45 junk", 0, false},
		{"12a", 0, false},
		{"1705332225.", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseTime([]byte(tc.in))
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestParseTimeMatchesTimeParse compares with the standard library over
// random instants and zones.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		sec := r.Int64N(4102444800) // 1970..2100
		off := (r.IntN(27*4) - 12*4) * 15 * 60
		ts := time.Unix(sec, 0).In(time.FixedZone("", off))
		s := ts.Format("2006-01-02 15:04:05-0700")
		got, ok := parseTime([]byte(s))
		want, err := time.Parse("2006-01-02 15:04:05-0700", s)
		if err != nil || !ok || got != want.Unix() {
			t.Fatalf("parseTime(%q) = %d, %v; time.Parse = %d, %v", s, got, ok, want.Unix(), err)
		}
	}
}

func TestSplitQueueMatchesAgent(t *testing.T) {
	for _, q := range []string{"gmail.com/vmta-1", "Gmail.COM./v", "yahoo.com", " a.b / c ", "a/b/c", "/x", "x/", "", "UPPER"} {
		wantD, wantV := agent.SplitQueue(q)
		d, v, ok := splitQueue(trimSpace([]byte(q)))
		gotD := string(normalizeDomain(nil, d))
		gotV := string(v)
		if !ok {
			gotV = "{default}"
		}
		if gotD != wantD || gotV != wantV {
			t.Errorf("splitQueue(%q) = %q, %q; agent.SplitQueue = %q, %q", q, gotD, gotV, wantD, wantV)
		}
	}
}

func hdr(names ...string) *header { return newHeader(names) }

func fieldsOf(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = []byte(s[i])
	}
	return out
}

func TestParseRecord(t *testing.T) {
	h := hdr("type", "timeLogged", "timeQueued", "rcpt", "dsnStatus", "dsnDiag", "bounceCat", "dlvSourceIp", "dlvSize", "vmta", "queue", "vmtaPool", "rcvSourceIp", "rcvSourceIp", "vmta")
	cases := []struct {
		name   string
		fields []string
		err    error
		check  func(r *record) string
	}{
		{name: "queue gives domain and vmta", fields: []string{"d", "2024-01-15 10:23:45-0500", "2024-01-15 10:23:41-0500", "x@other.com", "2.0.0 (success)", "smtp;250 ok", "success", "203.0.113.1", "100", "", "Gmail.com/vmta-a", "pool-g", "", "10.0.0.1", ""},
			check: func(r *record) string {
				return fmt.Sprintf("%s %s %d %d %v %s %s %d", r.domain, r.vmta, r.timeLogged, r.timeQueued, r.hasQueued, r.pool, r.sourceIP, r.size)
			}},
		{name: "rcpt when no queue, duplicate vmta first non-empty", fields: []string{"rb", "1705332225", "", "<Who@Example.ORG>", "5.1.1", "", "bad-mailbox", "", "", "", "", "", "", "", "vmta-dup"},
			check: func(r *record) string { return fmt.Sprintf("%s %s %v %d", r.domain, r.vmta, r.hasQueued, r.size) }},
		{name: "queue without slash", fields: []string{"t", "1705332225", "", "", "", "", "", "", "x", "", "aol.com", "", "", "", ""},
			check: func(r *record) string { return fmt.Sprintf("%s %s %d", r.domain, r.vmta, r.size) }},
		{name: "unknown type", fields: []string{"zz", "1705332225", "", "", "", "", "", "", "", "", "", "", "", "", ""}, err: errType},
		{name: "bad time", fields: []string{"d", "nope", "", "", "", "", "", "", "", "", "", "", "", "", ""}, err: errTimeLogged},
		{name: "shape", fields: []string{"d", "1705332225"}, err: errShape},
	}
	want := []string{
		"gmail.com vmta-a 1705332225 1705332221 true pool-g 203.0.113.1 100",
		"example.org vmta-dup false 0",
		"aol.com {default} 0",
	}
	for i, tc := range cases {
		var r record
		err := parseRecord(h, fieldsOf(tc.fields...), &r)
		if err != tc.err {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
			continue
		}
		if tc.check != nil {
			if got := tc.check(&r); got != want[i] {
				t.Errorf("%s: %s, want %s", tc.name, got, want[i])
			}
		}
	}
	if err := parseRecord(nil, fieldsOf("d", "1"), &record{}); err != errNoHeader {
		t.Errorf("no header: %v", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(header23, "d,2024-01-15 10:23:45-0500,2024-01-15 10:23:41-0500,o@x,a@Gmail.com,,relayed,2.0.0 (success),smtp;250 ok,mx,success,smtp,,smtp,1.2.3.4,5.6.7.8,,12,v,,,gmail.com/v,p")
	f.Add("type,timeLogged,rcpt,vmta,vmta", "t,1705332225,b@x.org,,v2")
	f.Add("type,queue,timeLogged,dsnDiag", "tq,/,2024-01-15T10:25:10-05:00,smtp;421 4.7.0 [TSS04] from 1.2.3.4")
	f.Fuzz(func(t *testing.T, hdrLine, line string) {
		s := newScanner(1 << 16)
		n, st := s.scan([]byte(hdrLine+"\n"), true)
		if st != scanRecord || n == 0 {
			return
		}
		h, _ := headerFromFields(s.fields)
		if _, st := s.scan([]byte(line+"\n"), true); st != scanRecord {
			return
		}
		var r record
		if err := parseRecord(h, s.fields, &r); err != nil {
			return
		}
		if r.typ == 0 || r.typ >= numTypes {
			t.Fatalf("type %d accepted", r.typ)
		}
		if r.size < 0 {
			t.Fatalf("negative size %d", r.size)
		}
		for _, c := range r.domain {
			if c >= 'A' && c <= 'Z' {
				t.Fatalf("domain %q not lower case", r.domain)
			}
		}
		a := newAggregator(10*time.Second, 2, agent.NewISPMap(nil))
		a.add(&r)
		pts, _ := a.closeAll()
		if got := sumCount(t, pts); got != 1 {
			t.Fatalf("one record gave count %d", got)
		}
	})
}

// TestTimeCache parses a run of stamps through one cache and compares each
// with a fresh parse: the cache must never change a result.
func TestTimeCache(t *testing.T) {
	var c timeCache
	r := rand.New(rand.NewPCG(5, 6))
	ts := testStart
	zones := []string{"-0500", "+0530", "Z", " -05:00", ".123-0500"}
	for range 50000 {
		ts = ts.Add(time.Duration(r.IntN(400)) * time.Second)
		s := ts.Format("2006-01-02 15:04:05") + zones[r.IntN(len(zones))]
		if r.IntN(50) == 0 {
			s = s[:15] + "x" + s[16:] // a bad minute between good stamps
		}
		want, wok := parseTime([]byte(s))
		got, gok := c.parse([]byte(s))
		if got != want || gok != wok {
			t.Fatalf("cache parse(%q) = %d, %v; want %d, %v", s, got, gok, want, wok)
		}
	}
}
