package acct

import (
	"strconv"
	"unicode/utf8"
)

// appendState appends the aggregator's state (aggState) as JSON: the very
// bytes json.Marshal writes for it, without building the structs first. A
// catch-up writes the open intervals into the checkpoint after every window
// — thousands of tag sets each on a busy server — and through state() and
// json.Marshal that was most of what it allocated (TestAppendStateIsJSON
// keeps the two equal).
func (a *aggregator) appendState(dst []byte) []byte {
	dst = append(dst, `{"closed_up_to":`...)
	dst = strconv.AppendInt(dst, a.closedUpTo, 10)
	dst = append(dst, `,"closed_set":`...)
	dst = strconv.AppendBool(dst, a.closedSet)
	if len(a.open) > 0 {
		dst = append(dst, `,"intervals":[`...)
		for i, iv := range a.open {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = a.appendInterval(dst, iv)
		}
		dst = append(dst, ']')
	}
	if views := a.viewStates(); len(views) > 0 {
		dst = append(dst, `,"views":[`...)
		for i, v := range views {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendJSONString(dst, v.Name)
			dst = append(dst, `,"day":`...)
			dst = strconv.AppendInt(dst, v.Day, 10)
			if len(v.Domains) > 0 {
				dst = append(dst, `,"domains":[`...)
				for j, d := range v.Domains {
					if j > 0 {
						dst = append(dst, ',')
					}
					dst = appendJSONString(dst, d)
				}
				dst = append(dst, ']')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendInterval appends one intervalState.
func (a *aggregator) appendInterval(dst []byte, iv *interval) []byte {
	dst = append(dst, `{"start":`...)
	dst = strconv.AppendInt(dst, iv.start, 10)
	if len(iv.acct) > 0 {
		dst = append(dst, `,"acct":[`...)
		for i, packed := range sortedKeys(iv.acct) {
			if i > 0 {
				dst = append(dst, ',')
			}
			k, v := a.decodeKey(packed), iv.acct[packed]
			dst = append(dst, `{"t":`...)
			dst = appendJSONString(dst, k.typ.String())
			dst = appendOptString(dst, `,"d":`, k.domain)
			dst = appendOptString(dst, `,"i":`, k.isp)
			dst = appendOptString(dst, `,"v":`, k.vmta)
			dst = appendOptString(dst, `,"p":`, k.pool)
			dst = appendOptString(dst, `,"s":`, k.sourceIP)
			dst = appendOptString(dst, `,"b":`, k.bounceCat)
			dst = appendOptString(dst, `,"c":`, dsnClassTag(k.dsnClass))
			dst = append(dst, `,"n":`...)
			dst = strconv.AppendInt(dst, v.count, 10)
			dst = appendOptInt(dst, `,"by":`, v.bytes)
			dst = appendOptInt(dst, `,"qs":`, v.qsum)
			dst = appendOptInt(dst, `,"qm":`, v.qmax)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(iv.diag) > 0 {
		dst = append(dst, `,"diag":[`...)
		for i, key := range sortedKeys(iv.diag) {
			if i > 0 {
				dst = append(dst, ',')
			}
			d := iv.diag[key]
			dst = append(dst, `{"t":`...)
			dst = appendJSONString(dst, d.typ.String())
			dst = appendOptString(dst, `,"i":`, d.isp)
			dst = append(dst, `,"p":`...)
			dst = appendJSONString(dst, d.pattern)
			dst = append(dst, `,"n":`...)
			dst = strconv.AppendInt(dst, d.count, 10)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

func appendOptInt(dst []byte, key string, n int64) []byte {
	if n == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), n, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json writes
// it: HTML-safe (<, > and & as \u003c …), U+2028 and U+2029 escaped, and
// invalid UTF-8 as U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
