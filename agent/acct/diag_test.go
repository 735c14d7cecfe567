package acct

import (
	"testing"
	"unicode/utf8"
)

func TestDiagPattern(t *testing.T) {
	cases := []struct{ in, want string }{
		{"smtp;421 4.7.0 [TSS04] Messages from 203.0.113.21 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
			"421 4.7.0 [TSS04] Messages from <ip> temporarily deferred du"},
		{"smtp;250 2.0.0 OK  1705332225 d75a77b69052e-42a1bc3f1c2si11223344qtx.512 - gsmtp", "250 2.0.0 OK # * - gsmtp"},
		{"smtp;552 5.2.2 <frank@mail-full.example.net>: Mailbox full, \"\"quota\"\" exceeded", `552 5.2.2 <*@*>: Mailbox full, ""quota"" exceeded`},
		{"smtp;550 5.7.1 Unfortunately, messages from [203.0.113.32] weren't sent. (S3150). [BN8NAM12FT048.eop-nam12.prod.protection.outlook.com]",
			"550 5.7.1 Unfortunately, messages from [<ip>] weren't sent."},
		{"smtp;550-5.7.26 Unauthenticated email from x.example is not accepted", "550-5.7.26 Unauthenticated email from x.example is not accep"},
		{"ETIMEDOUT connecting to mx1.slowdomain.example (198.51.100.200)", "ETIMEDOUT connecting to * (<ip>)"},
		{"smtp;421 Service unavailable [2607:f8b0:4864:20::1b]", "421 Service unavailable [<ip>]"},
		{"smtp;250 2.6.0 <20240115152341.7f3b@em.shop.example> [InternalId=1120986112, Hostname=SN7P220MB0123.NAMP220.PROD.OUTLOOK.COM] 52311 bytes in 0.341",
			"250 2.6.0 <*@*> [InternalId=#, Hostname=*] # bytes in #"},
		{"  \r\n ", ""},
		{"smtp;451 Temporary\r\n failure", "451 Temporary failure"},
		{"smtp;550 AQHZxyzKLMnopQRstUVwxYZabcd rejected", "550 * rejected"},
	}
	for _, tc := range cases {
		got := string(appendDiagPattern(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("pattern(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestDiagPatternGroups checks that replies differing only in addresses and
// ids fall into one pattern.
func TestDiagPatternGroups(t *testing.T) {
	a := appendDiagPattern(nil, []byte("smtp;421 4.7.0 [TSS04] Messages from 203.0.113.21 temporarily deferred"))
	b := appendDiagPattern(nil, []byte("smtp;421 4.7.0 [TSS04] Messages from 198.51.100.9 temporarily deferred"))
	if string(a) != string(b) {
		t.Errorf("%q != %q", a, b)
	}
	c := appendDiagPattern(nil, []byte("smtp;421 4.7.0 [TSS01] Messages from 198.51.100.9 temporarily deferred"))
	if string(a) == string(c) {
		t.Errorf("different provider codes grouped: %q", c)
	}
}

func FuzzDiagPattern(f *testing.F) {
	f.Add("smtp;421 4.7.0 [TSS04] Messages from 203.0.113.21 temporarily deferred")
	f.Add("héllo wörld 1.2.3.4 ünïcödé ünïcödé ünïcödé ünïcödé ünïcödé ünïcödé ünïcödé")
	f.Fuzz(func(t *testing.T, s string) {
		p := appendDiagPattern([]byte("keep"), []byte(s))
		if string(p[:4]) != "keep" {
			t.Fatalf("prefix overwritten")
		}
		p = p[4:]
		if len(p) > diagPatternLen {
			t.Fatalf("pattern of %d bytes", len(p))
		}
		if utf8.ValidString(s) && !utf8.Valid(p) {
			t.Fatalf("valid input gave invalid UTF-8 %q", p)
		}
		if again := appendDiagPattern(nil, []byte(s)); string(again) != string(p) {
			t.Fatalf("not deterministic")
		}
	})
}
