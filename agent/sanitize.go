package agent

import (
	"hash/fnv"
	"unicode/utf8"
)

// MaxTagBytes bounds a tag value. A recipient domain is at most 253 bytes and
// a dsnDiag pattern 60, so only a hostile or broken value is ever cut.
const MaxTagBytes = 256

// tagHashLen is the length of the suffix a cut value ends with: "~" and eight
// hex digits of a hash of the whole value, so that distinct long values stay
// distinct series.
const tagHashLen = 9

// SafeTag returns s as a tag value every sink can carry: valid UTF-8 (each
// invalid byte becomes U+FFFD), no control characters (C0, DEL and C1 become
// a space), no trailing backslash (line protocol cannot escape one; it becomes
// U+FFFD), and at most MaxTagBytes bytes (a longer value keeps its start and
// ends with "~" and a hash of the whole value). It is idempotent, and returns
// s itself, without allocating, when s is already safe.
//
// Values written by strangers — recipient domains, SMTP replies, file
// contents — pass through it where they become points (the accounting
// aggregator, the pipeline); the sinks apply it again to whatever they are
// given, so that no point can make a sink refuse a batch.
func SafeTag(s string) string {
	if asciiSafe(s) {
		return s
	}
	out := appendSafe(make([]byte, 0, min(len(s)+8, MaxTagBytes)), s)
	if string(out) == s {
		return s
	}
	return string(out)
}

// AppendSafeTag appends SafeTag(string(b)) to dst without allocating when dst
// has room. The accounting aggregator uses it on the bytes of each record.
func AppendSafeTag(dst, b []byte) []byte {
	if asciiSafe(b) {
		return append(dst, b...)
	}
	return appendSafe(dst, string(b))
}

// IsPlainTag reports, without allocating, whether s is printable ASCII
// that SafeTag leaves as it is: the common case, which needs no copy.
func IsPlainTag[T string | []byte](s T) bool { return asciiSafe(s) }

// IsSafeTag reports whether SafeTag(s) == s.
func IsSafeTag(s string) bool {
	if asciiSafe(s) {
		return true
	}
	return len(s) <= MaxTagBytes && string(appendSafe(nil, s)) == s
}

// asciiSafe is the fast path: printable ASCII, short, no trailing backslash.
func asciiSafe[T string | []byte](s T) bool {
	if len(s) > MaxTagBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return len(s) == 0 || s[len(s)-1] != '\\'
}

// appendSafe is the slow path of SafeTag.
func appendSafe(dst []byte, s string) []byte {
	start := len(dst)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			dst = append(dst, ' ')
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += max(size, 1)
	}
	if n := len(dst); n > start && dst[n-1] == '\\' {
		dst = utf8.AppendRune(dst[:n-1], utf8.RuneError)
	}
	if len(dst)-start > MaxTagBytes {
		cut := start + MaxTagBytes - tagHashLen
		for cut > start && !utf8.RuneStart(dst[cut]) {
			cut--
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		dst = append(dst[:cut], '~')
		dst = appendHex32(dst, h.Sum32())
	}
	return dst
}

func appendHex32(dst []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>shift)&0xf])
	}
	return dst
}
