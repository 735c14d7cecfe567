package acct

import (
	"bytes"
	"strings"
	"testing"
)

func scanAll(t testing.TB, s *scanner, buf []byte, atEOF bool) (recs [][]string, rest int, last scanStatus) {
	t.Helper()
	pos := 0
	for pos < len(buf) {
		n, st := s.scan(buf[pos:], atEOF)
		last = st
		if st != scanRecord {
			return recs, pos, st
		}
		if n <= 0 {
			t.Fatalf("record of %d bytes at %d", n, pos)
		}
		rec := make([]string, len(s.fields))
		for i, f := range s.fields {
			rec[i] = string(f)
		}
		recs = append(recs, rec)
		pos += n
	}
	return recs, pos, last
}

func TestScan(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		atEOF bool
		want  [][]string
		rest  int // bytes left unconsumed
		last  scanStatus
	}{
		{name: "crlf", in: "a,b,c\r\nd,,f\r\n", want: [][]string{{"a", "b", "c"}, {"d", "", "f"}}},
		{name: "lf", in: "a,b\nc,d\n", want: [][]string{{"a", "b"}, {"c", "d"}}},
		{name: "quoted comma", in: "x,\"P,S,T\",y\r\n", want: [][]string{{"x", "P,S,T", "y"}}},
		{name: "doubled quote", in: "\"a \"\"b\"\" c\",d\r\n", want: [][]string{{`a "b" c`, "d"}}},
		{name: "quoted crlf", in: "t,\"line1\r\nline2\",z\r\n", want: [][]string{{"t", "line1\r\nline2", "z"}}},
		{name: "quoted lf", in: "t,\"l1\nl2\"\n", want: [][]string{{"t", "l1\nl2"}}},
		{name: "empty trailing", in: "a,,\r\n", want: [][]string{{"a", "", ""}}},
		{name: "quoted last field", in: "a,\"b\"\r\n", want: [][]string{{"a", "b"}}},
		{name: "empty quoted", in: "\"\",a\n", want: [][]string{{"", "a"}}},
		{name: "only quotes doubled", in: "\"\"\"\"\n", want: [][]string{{`"`}}},
		{name: "blank line", in: "\r\na\r\n", want: [][]string{{""}, {"a"}}},
		{name: "lone cr kept", in: "a\rb,c\n", want: [][]string{{"a\rb", "c"}}},
		{name: "text after quote kept", in: "\"ab\"cd,e\n", want: [][]string{{"abcd", "e"}}},
		{name: "partial line waits", in: "a,b\r\nc,d", want: [][]string{{"a", "b"}}, rest: 3, last: scanNeedMore},
		{name: "partial cr waits", in: "a,b\r", rest: 4, last: scanNeedMore},
		{name: "partial after comma waits", in: "a,", rest: 2, last: scanNeedMore},
		{name: "open quote waits", in: "a,\"b\r\nc", rest: 7, last: scanNeedMore},
		{name: "closing quote at end waits", in: "a,\"b\"", rest: 5, last: scanNeedMore},
		{name: "last line at eof", in: "a,b\r\nc,d", atEOF: true, want: [][]string{{"a", "b"}, {"c", "d"}}},
		{name: "quoted last at eof", in: "a,\"b\"", atEOF: true, want: [][]string{{"a", "b"}}},
		{name: "comma last at eof", in: "a,\"b\",", atEOF: true, want: [][]string{{"a", "b", ""}}},
		{name: "open quote at eof", in: "a,\"b\nc", atEOF: true, rest: 0, last: scanBroken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScanner(1 << 20)
			recs, pos, last := scanAll(t, s, []byte(tc.in), tc.atEOF)
			if tc.last == scanBroken {
				n, st := s.scan([]byte(tc.in), true)
				if st != scanBroken || n != len(tc.in) {
					t.Fatalf("scan = %d, %d; want %d, broken", n, st, len(tc.in))
				}
				return
			}
			if len(recs) != len(tc.want) {
				t.Fatalf("records %q, want %q", recs, tc.want)
			}
			for i := range recs {
				if strings.Join(recs[i], "|") != strings.Join(tc.want[i], "|") || len(recs[i]) != len(tc.want[i]) {
					t.Errorf("record %d = %q, want %q", i, recs[i], tc.want[i])
				}
			}
			if tc.rest != 0 && (len(tc.in)-pos != tc.rest || last != tc.last) {
				t.Errorf("left %d bytes with status %d, want %d with %d", len(tc.in)-pos, last, tc.rest, tc.last)
			}
			if tc.rest == 0 && pos != len(tc.in) {
				t.Errorf("consumed %d of %d bytes", pos, len(tc.in))
			}
		})
	}
}

func TestScanLimits(t *testing.T) {
	s := newScanner(64)
	long := []byte(strings.Repeat("x", 100) + "\r\nok\r\n")
	if _, st := s.scan(long, false); st != scanTooLong {
		t.Fatalf("long line: status %d, want too long", st)
	}
	n, ok := resync(long)
	if !ok || string(long[n:]) != "ok\r\n" {
		t.Fatalf("resync skipped %d bytes (ok=%v)", n, ok)
	}
	// A short buffer without a line end is not yet too long.
	if _, st := s.scan([]byte(strings.Repeat("x", 63)), false); st != scanNeedMore {
		t.Fatalf("63 bytes: status %d, want need more", st)
	}
	// A quote still open after several lines waits for more, and says how
	// many lines it runs over: whether it was never closed is the caller's
	// judgement (lineParser.strayQuote).
	q := []byte("a,\"1\n2\n3\n4\nb,c\n")
	if _, st := s.scan(q, false); st != scanNeedMore || !s.multiline || s.lines != 5 {
		t.Fatalf("open quote over 5 lines: status %d, multiline %v, lines %d", st, s.multiline, s.lines)
	}
	n, _ = resync(q)
	if string(q[n:]) != "2\n3\n4\nb,c\n" {
		t.Fatalf("resync after open quote left %q", q[n:])
	}
}

// TestScanPrefixNeverRecord checks "never parse a partial line": every
// prefix of a record, cut anywhere before its end, must wait for more.
func TestScanPrefixNeverRecord(t *testing.T) {
	data, _ := genFile(1, 30, testStart, 1e9, true)
	data = append(data, "t,\"a\r\nb\"\"c\",d\r\n"...)
	checkPrefixes(t, data)
}

func checkPrefixes(t testing.TB, data []byte) {
	s := newScanner(1 << 20)
	pos := 0
	for pos < len(data) {
		n, st := s.scan(data[pos:], false)
		if st != scanRecord {
			return
		}
		want := make([]string, len(s.fields))
		for i, f := range s.fields {
			want[i] = string(f)
		}
		for k := 1; k < n; k++ {
			if m, st := s.scan(data[pos:pos+k], false); st == scanRecord {
				t.Fatalf("prefix of %d of a %d-byte record at %d gave a %d-byte record", k, n, pos, m)
			}
		}
		// With the following bytes absent but atEOF the same record results.
		if m, st := s.scan(data[pos:pos+n], true); st != scanRecord || m != n {
			t.Fatalf("record at %d alone at EOF: %d, %d", pos, m, st)
		}
		if got := len(s.fields); got != len(want) {
			t.Fatalf("record at %d at EOF has %d fields, want %d", pos, got, len(want))
		}
		pos += n
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte("a,b\r\n\"c,d\",\"e\"\"f\"\r\ng\n"), false)
	f.Add([]byte("x,\"1\r\n2\",\r\n"), true)
	f.Add([]byte("\"unterminated,\n"), true)
	f.Add([]byte("\"a\"b\"c\",\r\r\n"), false)
	raw, _ := genFile(2, 3, testStart, 1e9, true)
	f.Add(raw, false)
	f.Fuzz(func(t *testing.T, data []byte, atEOF bool) {
		s := newScanner(512)
		pos := 0
		for pos < len(data) {
			n, st := s.scan(data[pos:], atEOF)
			switch st {
			case scanRecord, scanBroken:
				if n <= 0 || n > len(data)-pos {
					t.Fatalf("status %d with n=%d at %d of %d", st, n, pos, len(data))
				}
				if st == scanRecord && !atEOF && data[pos+n-1] != '\n' {
					t.Fatalf("record at %d does not end with a line end", pos)
				}
				if st == scanRecord {
					// Re-encoding the fields and scanning them again must
					// give them back.
					fields := make([]string, len(s.fields))
					for i, fl := range s.fields {
						fields[i] = string(fl)
					}
					enc := []byte(csvLine(fields, true))
					s2 := newScanner(1 << 20)
					m, st2 := s2.scan(enc, false)
					if st2 != scanRecord || m != len(enc) || len(s2.fields) != len(fields) {
						t.Fatalf("round trip of %q: %d, %d, %d fields", fields, m, st2, len(s2.fields))
					}
					for i := range fields {
						if !bytes.Equal(s2.fields[i], []byte(fields[i])) {
							t.Fatalf("round trip field %d: %q, want %q", i, s2.fields[i], fields[i])
						}
					}
				}
				pos += n
			case scanNeedMore:
				if atEOF {
					t.Fatalf("need more at EOF at %d", pos)
				}
				return
			case scanTooLong:
				skip, _ := resync(data[pos:])
				if skip <= 0 {
					t.Fatalf("resync made no progress")
				}
				pos += skip
			}
		}
		// The prefix check is quadratic; keep it to inputs the fuzzer can
		// afford many of.
		if !atEOF && len(data) <= 256 {
			checkPrefixes(t, data)
		}
	})
}
