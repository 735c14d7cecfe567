package agent

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeTag(t *testing.T) {
	long := strings.Repeat("a", 300)
	cases := []struct{ in, want string }{
		{"gmail.com", "gmail.com"},
		{"", ""},
		{"münchen.de", "münchen.de"},
		{"caf\xe9.com", "caf\uFFFD.com"},
		{"a\tb\nc\x00d\x7fe\u0085f", "a b c d e f"},
		{`C:\`, "C:\uFFFD"},
		{`endbs\\`, `endbs\` + "\uFFFD"},
		{`a\b`, `a\b`},
	}
	for _, c := range cases {
		if got := SafeTag(c.in); got != c.want {
			t.Errorf("SafeTag(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := SafeTag(long)
	if len(got) != MaxTagBytes || !strings.HasPrefix(got, strings.Repeat("a", MaxTagBytes-tagHashLen)+"~") {
		t.Errorf("long value cut to %q (%d bytes)", got, len(got))
	}
	if other := SafeTag(long + "b"); other == got {
		t.Errorf("two long values that differ after the cut share %q", got)
	}
	// A value exactly at the cap that ends in a backslash must not grow
	// past the cap when the backslash is replaced.
	edge := strings.Repeat("a", MaxTagBytes-1) + `\`
	if g := SafeTag(edge); len(g) > MaxTagBytes || SafeTag(g) != g {
		t.Errorf("edge value: %q (%d bytes)", g, len(g))
	}
}

func TestSafeTagDoesNotAllocateWhenSafe(t *testing.T) {
	s := "yahoo.com"
	if n := testing.AllocsPerRun(100, func() { _ = SafeTag(s) }); n != 0 {
		t.Errorf("SafeTag allocates %.0f times for a safe value", n)
	}
	buf := make([]byte, 0, 64)
	b := []byte("caf\xe9.com")
	if n := testing.AllocsPerRun(100, func() { buf = AppendSafeTag(buf[:0], b) }); n != 0 {
		t.Errorf("AppendSafeTag allocates %.0f times with room in dst", n)
	}
}

// FuzzSafeTag: the result is valid UTF-8, free of control characters and a
// trailing backslash, within the cap, idempotent, and the same from the
// string and the byte form.
func FuzzSafeTag(f *testing.F) {
	for _, s := range []string{"gmail.com", "caf\xe9.com", `C:\`, "\x00", strings.Repeat("é", 200), strings.Repeat("x", 255) + "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeTag(s)
		if !utf8.ValidString(got) {
			t.Fatalf("SafeTag(%q) = %q: invalid UTF-8", s, got)
		}
		if len(got) > MaxTagBytes {
			t.Fatalf("SafeTag(%q) is %d bytes", s, len(got))
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
				t.Fatalf("SafeTag(%q) = %q holds control character %U", s, got, r)
			}
		}
		if strings.HasSuffix(got, `\`) {
			t.Fatalf("SafeTag(%q) = %q ends in a backslash", s, got)
		}
		if again := SafeTag(got); again != got {
			t.Fatalf("not idempotent: %q → %q → %q", s, got, again)
		}
		if !IsSafeTag(got) || (got != s && IsSafeTag(s)) {
			t.Fatalf("IsSafeTag disagrees for %q / %q", s, got)
		}
		if b := string(AppendSafeTag([]byte("x"), []byte(s))); b != "x"+got {
			t.Fatalf("AppendSafeTag(%q) = %q, want %q", s, b[1:], got)
		}
	})
}
