package acct

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Hostile input inside the lines — quotes never closed, SMTP replies shaped
// like records, NUL bytes, odd line ends, unsafe tag values, absurd sizes —
// read by the tailer and by Backfill. Each one failed on the agent before
// the hostile-input work.

// An unterminated quote in the last field swallowed the next good record
// (20 valid records: 19 counted, 1 malformed). One stray quote costs one
// record, in a file being written (the bad record first waits for more
// data) and in a finished one.
func TestStrayQuoteCostsOneRecord(t *testing.T) {
	data, recs := records(1, 20, testStart)
	lines := strings.SplitAfter(string(data), "\r\n")
	bad := strings.TrimSuffix(tsLine(testStart.Add(5*time.Second).Format("2006-01-02 15:04:05-0700"), "bad.example"), "\r\n")
	bad += "\"smtp;550 never closed\r\n" // the last field (empty) becomes one that opens a quote
	var withBad []string
	for i, l := range lines {
		withBad = append(withBad, l)
		if i == 9 {
			withBad = append(withBad, bad)
		}
	}

	t.Run("tailing", func(t *testing.T) {
		h := newHarness(t)
		f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
		appendFile(t, f0, []byte(header23+"\r\n"+strings.Join(withBad[:11], "")))
		h.start()
		h.poll() // the bad record is last: it waits
		for _, l := range withBad[11:] {
			appendFile(t, f0, []byte(l))
			h.poll()
		}
		h.now = h.now.Add(time.Hour)
		h.poll()
		checkTotals(t, tallyPoints(t, h.db.points()), recs)
		if n := h.stat("malformed"); n != 1 {
			t.Errorf("malformed = %d, want 1", n)
		}
		h.checkReconciles()
	})
	t.Run("backfill", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "acct.csv")
		if err := os.WriteFile(path, []byte(header23+"\r\n"+strings.Join(withBad, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		pts, st := backfillPoints(t, path)
		if st.Records != 20 || st.Malformed != 1 {
			t.Errorf("records %d malformed %d, want 20 and 1", st.Records, st.Malformed)
		}
		checkTotals(t, tallyPoints(t, pts), recs)
	})
	t.Run("last line of a finished file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "acct.csv")
		if err := os.WriteFile(path, []byte(header23+"\r\n"+string(data)+bad+string(data)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, st := backfillPoints(t, path)
		if st.Records != 40 || st.Malformed != 1 {
			t.Errorf("records %d malformed %d, want 40 and 1", st.Records, st.Malformed)
		}
	})
}

// Invalid UTF-8, control characters and a trailing backslash in recipient
// domains and SMTP replies become safe tag values before aggregation, so that
// two values made equal are one tag set (not two points of one series, one
// overwriting the other) and the checkpoint holds valid UTF-8.
func TestHostileTagValuesAreSafeAndExact(t *testing.T) {
	var b strings.Builder
	b.WriteString(header23 + "\r\n")
	ts := testStart.Format("2006-01-02 15:04:05-0700")
	for _, d := range []string{"caf\xe9.com", "caf\xe8.com", "tab\there.com", `endbs\\`, strings.Repeat("x", 70000)} {
		f := make([]string, 23)
		f[0], f[1], f[4], f[8], f[21] = "b", ts, "u@"+d, `smtp;550 C:\`, d+"/vmta-1"
		b.WriteString(csvLine(f, true))
	}
	h := newHarness(t)
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), []byte(b.String()))
	h.start()
	h.poll()
	h.stop() // the open interval goes into the checkpoint
	h.start()
	h.now = h.now.Add(time.Hour)
	h.poll()
	got := map[string]int64{}
	for _, p := range h.db.points() {
		for _, tg := range p.Tags {
			if !agent.IsSafeTag(tg.Value) {
				t.Errorf("unsafe tag %s=%q", tg.Key, tg.Value)
			}
		}
		if p.Measurement == measAcct+"_domain" {
			d, _ := p.TagValue("domain")
			c, _ := p.FieldValue("count")
			got[d] += c.(int64)
		}
	}
	want := map[string]int64{"caf\uFFFD.com": 2, "tab here.com": 1, `endbs\` + "\uFFFD": 1, agent.SafeTag(strings.Repeat("x", 70000)): 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts by domain %v, want %v", got, want)
	}
}

// A stray quote followed by a line that is no record (a blank line) must
// not hold the records after it until 64 lines have come.
func TestStrayQuoteBeforeABlankLineDoesNotStall(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	bad := tsLine(testStart.Format("2006-01-02 15:04:05-0700"), "bad.example")
	bad = strings.TrimSuffix(bad, "\r\n") + "\"smtp;550 never closed\r\n\r\n"
	data, recs := records(1, 5, testStart.Add(time.Second))
	appendFile(t, f0, []byte(header23+"\r\n"+bad+string(data)))
	h.start()
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	if n := h.stat("malformed"); n != 1 {
		t.Errorf("malformed = %d, want 1", n)
	}
}

// dsnDiag is a remote server's reply. Written inside properly quoted
// fields, its lines — even ones shaped like accounting records, even 70 of
// them — are never counted as records: the real record counts (or, over
// more lines than any SMTP reply, is one malformed record), nothing else.
func TestSMTPReplyCannotInjectRecords(t *testing.T) {
	ts := testStart.Format("2006-01-02 15:04:05-0700")
	rec := func(typ, domain, diag string) string {
		f := make([]string, 23)
		f[0], f[1], f[4], f[8], f[21] = typ, ts, "u@"+domain, diag, domain+"/vmta-1"
		return csvLine(f, true)
	}
	fake := strings.TrimSuffix(rec("d", "injected.example", ""), "\r\n")
	short := "smtp;550 5.7.1 rejected\n" + fake + "\nend of reply"
	long := "smtp;550 5.7.1 go away\n" + strings.Repeat(fake+"\n", 69) + "bye"
	body := header23 + "\r\n" + rec("d", "real.example", "") + rec("b", "victim.example", short) +
		rec("d", "real.example", "") + rec("b", "victim2.example", long) + rec("d", "real.example", "")
	check := func(t *testing.T, pts []agent.Point, malformed int64) {
		got := tallyPoints(t, pts)
		want := map[tallyKey]int64{{"d", "", "vmta-1"}: 3, {"d", "real.example", ""}: 3, {"b", "", "vmta-1"}: 1, {"b", "victim.example", ""}: 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("counted %v, want %v", got, want)
		}
		if malformed != 1 {
			t.Errorf("malformed %d, want 1 (the 70-line reply)", malformed)
		}
	}
	t.Run("backfill", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "acct.csv")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		pts, st := backfillPoints(t, path)
		check(t, pts, st.Malformed)
	})
	t.Run("tailing, written in pieces", func(t *testing.T) {
		h := newHarness(t)
		f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
		h.start()
		for i := 0; i < len(body); i += 700 {
			appendFile(t, f0, []byte(body[i:min(i+700, len(body))]))
			h.poll()
			h.now = h.now.Add(200 * time.Millisecond) // a record is written at once, never open for strayWait
		}
		h.now = h.now.Add(time.Hour)
		h.poll()
		check(t, h.db.points(), h.stat("malformed"))
	})
}

// What a crash, an editor or a hand can leave in a file costs at most the
// line it is on: NUL bytes before a record, a byte-order mark before the
// header, a header written with ", ", and a file with CR-only line ends is
// reported as malformed instead of read as one header row that counts
// nothing.
func TestOddFileShapes(t *testing.T) {
	data, recs := records(1, 20, testStart)
	lines := strings.SplitAfter(string(data), "\r\n")
	cases := []struct {
		name            string
		body            string
		counted         int
		malformed       int64
		wantMalformedGT bool
	}{
		{"NULs before a record", header23 + "\r\n" + strings.Join(lines[:10], "") + strings.Repeat("\x00", 5000) +
			strings.Join(lines[10:], ""), 20, 1, false},
		{"NULs at the end", header23 + "\r\n" + string(data) + strings.Repeat("\x00", 100), 20, 1, false},
		{"more NULs than a line may hold", header23 + "\r\n" + strings.Join(lines[:10], "") + strings.Repeat("\x00", 2<<20) +
			strings.Join(lines[10:], ""), 20, 1, false},
		{"byte-order mark", "\xef\xbb\xbf" + header23 + "\r\n" + string(data), 20, 0, false},
		{"header with spaces", strings.ReplaceAll(header23, ",", ", ") + "\r\n" + string(data), 20, 0, false},
		{"CR-only line ends", strings.ReplaceAll(header23+"\r\n"+string(data), "\r\n", "\r"), 0, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acct.csv")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			pts, st := backfillPoints(t, path)
			if got := sumCount(t, pts); got != int64(tc.counted) {
				t.Errorf("counted %d, want %d", got, tc.counted)
			}
			if tc.counted == len(recs) {
				checkTotals(t, tallyPoints(t, pts), recs)
			}
			if st.Malformed != tc.malformed && !(tc.wantMalformedGT && st.Malformed > 0) {
				t.Errorf("malformed %d, want %d", st.Malformed, tc.malformed)
			}
		})
	}
}

// A run of NULs longer than max_line_bytes, at the end of a live file,
// stopped the stream: the buffer could not grow past the line cap. It is
// one malformed line, however it arrives, and the records after it count.
func TestLongNULRunWhileTailing(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 20, testStart)
	lines := strings.SplitAfter(string(data), "\r\n")
	appendFile(t, f0, []byte(header23+"\r\n"+strings.Join(lines[:10], "")+strings.Repeat("\x00", 3<<20)))
	h.start()
	h.poll()
	appendFile(t, f0, []byte(strings.Repeat("\x00", 1<<20)))
	h.poll()
	appendFile(t, f0, []byte(strings.Join(lines[10:], "")))
	h.poll()
	h.now = h.now.Add(time.Minute)
	h.poll()
	if n := h.stat("malformed"); n != 1 {
		t.Errorf("malformed = %d, want 1 for the whole run", n)
	}
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	h.checkReconciles()
}

// Ten records of dlvSize 999999999999999999 wrapped the bytes sum negative.
func TestBytesSumSaturates(t *testing.T) {
	ts := testStart.Format("2006-01-02 15:04:05-0700")
	var b strings.Builder
	b.WriteString(header23 + "\r\n")
	for range 10 {
		f := make([]string, 23)
		f[0], f[1], f[4], f[17], f[21] = "d", ts, "u@big.example", "999999999999999999", "big.example/v"
		b.WriteString(csvLine(f, true))
	}
	path := filepath.Join(t.TempDir(), "acct.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pts, _ := backfillPoints(t, path)
	for _, p := range pts {
		if v, ok := p.FieldValue("bytes"); ok && v.(int64) < 0 {
			t.Errorf("bytes = %d", v)
		}
	}
}

// A file that ends in a quote never closed (rotated, or PowerMTA stopped in
// the middle of a record) counts that line as malformed after a while,
// instead of keeping it neither counted nor malformed for days.
func TestQuoteOpenAtTheEndOfAFileIsMalformedInTime(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 10, testStart)
	bad := strings.TrimSuffix(tsLine(testStart.Format("2006-01-02 15:04:05-0700"), "bad.example"), "\r\n") + "\"smtp;550 never\r\n"
	appendFile(t, f0, []byte(header23+"\r\n"+string(data)+bad))
	h.start()
	h.poll()
	if n := h.stat("malformed"); n != 0 {
		t.Fatalf("malformed = %d at once; the record may still be being written", n)
	}
	h.now = h.now.Add(6 * time.Minute)
	h.poll()
	h.poll()
	if n := h.stat("malformed"); n != 1 {
		t.Errorf("malformed = %d after 6 minutes, want 1", n)
	}
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	h.checkReconciles()
}
