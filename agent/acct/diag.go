package acct

import (
	"bytes"
	"unicode/utf8"
)

// diagPatternLen is how much of a masked dsnDiag is kept: enough to tell
// causes apart, short enough that one cause is one pattern.
const diagPatternLen = 60

// appendDiagPattern appends the pattern of a dsnDiag to dst: the reply with
// its variable parts masked, so that equal causes group — numbers become "#",
// IP addresses "<ip>", e-mail addresses and message ids "*@*", other tokens
// that hold digits (queue ids, host names, hex and base64 ids) "*" — cut to
// diagPatternLen bytes. The SMTP reply code, the enhanced status code and
// bracketed provider codes such as [TSS04] stay readable. The "smtp;" prefix,
// which every SMTP reply carries, is dropped so the 60 bytes go to the reply.
func appendDiagPattern(dst, diag []byte) []byte {
	start := len(dst)
	d := trimSpace(diag)
	if len(d) >= 5 && bytes.EqualFold(d[:5], []byte("smtp;")) {
		d = trimSpace(d[5:])
	}
	first := true
	space := false
	for i := 0; i < len(d) && len(dst)-start < diagPatternLen; {
		c := d[i]
		if c <= ' ' || c == 0x7f {
			space = true
			i++
			continue
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		if isDiagDelim(c) {
			dst = append(dst, c)
			i++
			continue
		}
		j := i
		for j < len(d) && d[j] > ' ' && d[j] != 0x7f && !isDiagDelim(d[j]) {
			j++
		}
		dst = appendMaskedWord(dst, d[i:j], first)
		first = false
		i = j
	}
	if len(dst)-start > diagPatternLen {
		cut := start + diagPatternLen
		for cut > start && !utf8.RuneStart(dst[cut]) {
			cut--
		}
		dst = dst[:cut]
	}
	for len(dst) > start && dst[len(dst)-1] == ' ' {
		dst = dst[:len(dst)-1]
	}
	return dst
}

func isDiagDelim(c byte) bool {
	switch c {
	case '(', ')', '[', ']', '<', '>', '{', '}', ',', ';', '"', '\'', '=':
		return true
	}
	return false
}

// appendMaskedWord appends one word of a diag, masked if it varies between
// messages of the same cause. first says the word opens the reply, where a
// three-digit number is the SMTP reply code.
func appendMaskedWord(dst, w []byte, first bool) []byte {
	// Sentence punctuation is not part of the token.
	end := len(w)
	for end > 0 && (w[end-1] == '.' || w[end-1] == ':') {
		end--
	}
	tail := w[end:]
	w = w[:end]
	if len(w) == 0 {
		return append(dst, tail...)
	}
	if first && len(w) >= 4 && isDigits(w[:3]) && (w[3] == '-' || w[3] == ' ') {
		// "550-5.7.1": a multi-line reply code before the status code.
		dst = append(dst, w[:4]...)
		w = w[4:]
	}
	// One pass tells most words apart: plain words, the bulk of a reply,
	// need no further look.
	var digit, at, colon bool
	for _, c := range w {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c == '@':
			at = true
		case c == ':':
			colon = true
		}
	}
	if !digit && !at && !colon {
		if isBase64ish(w) {
			dst = append(dst, '*')
		} else {
			dst = append(dst, w...)
		}
		return append(dst, tail...)
	}
	switch {
	case len(w) == 0:
	case first && len(w) == 3 && isDigits(w):
		dst = append(dst, w...)
	case bytes.IndexByte(w, '@') >= 0:
		dst = append(dst, "*@*"...)
	case isStatusCode(w):
		dst = append(dst, w...)
	case isIPv4(w) || isIPv6(w):
		dst = append(dst, "<ip>"...)
	case bytes.IndexByte(w, ':') >= 0:
		// host:port, key:value — mask each side on its own.
		for k := 0; ; k++ {
			i := bytes.IndexByte(w, ':')
			part := w
			if i >= 0 {
				part = w[:i]
			}
			if k > 0 {
				dst = append(dst, ':')
			}
			dst = appendMaskedWord(dst, part, false)
			if i < 0 {
				break
			}
			w = w[i+1:]
		}
	case isNumber(w):
		dst = append(dst, '#')
	case isCode(w):
		dst = append(dst, w...)
	case hasDigit(w) || isBase64ish(w):
		dst = append(dst, '*')
	default:
		dst = append(dst, w...)
	}
	return append(dst, tail...)
}

func isDigits(w []byte) bool {
	for _, c := range w {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(w) > 0
}

func hasDigit(w []byte) bool {
	for _, c := range w {
		if c >= '0' && c <= '9' {
			return true
		}
	}
	return false
}

// isStatusCode matches an enhanced status code, "4.7.0" or "5.7.26".
func isStatusCode(w []byte) bool {
	if len(w) < 5 || (w[0] != '2' && w[0] != '4' && w[0] != '5') || w[1] != '.' {
		return false
	}
	return dottedDigits(w[2:], 2)
}

func isIPv4(w []byte) bool { return dottedDigits(w, 4) }

// dottedDigits matches n groups of one to three digits joined by dots.
func dottedDigits(w []byte, n int) bool {
	groups, run := 0, 0
	for _, c := range w {
		switch {
		case c >= '0' && c <= '9':
			run++
			if run > 3 {
				return false
			}
		case c == '.' && run > 0:
			groups++
			run = 0
		default:
			return false
		}
	}
	return run > 0 && groups+1 == n
}

// isIPv6 matches a word of hex digits, colons and dots with at least two
// colons, such as "2607:f8b0:4864:20::1b" or "::ffff:203.0.113.1".
func isIPv6(w []byte) bool {
	colons := 0
	for _, c := range w {
		switch {
		case c == ':':
			colons++
		case c == '.', c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return colons >= 2
}

// isNumber matches digits with decimal separators: "52311", "0.341", "1,234".
func isNumber(w []byte) bool {
	if len(w) == 0 || w[0] < '0' || w[0] > '9' {
		return false
	}
	for _, c := range w {
		if (c < '0' || c > '9') && c != '.' && c != ',' {
			return false
		}
	}
	return true
}

// isCode matches short provider codes that name a cause: TSS04, S3150, GL01.
func isCode(w []byte) bool {
	i := 0
	for i < len(w) && (w[i] >= 'A' && w[i] <= 'Z' || w[i] >= 'a' && w[i] <= 'z') {
		i++
	}
	if i == 0 || i > 8 {
		return false
	}
	d := len(w) - i
	return d >= 1 && d <= 6 && isDigits(w[i:])
}

// isBase64ish matches long tokens of mixed-case letters that carry no
// meaning for a human: encoded ids without digits.
func isBase64ish(w []byte) bool {
	if len(w) < 20 {
		return false
	}
	var upper, lower bool
	for _, c := range w {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c == '+' || c == '/' || c == '_' || c == '-':
		default:
			return false
		}
	}
	return upper && lower
}
