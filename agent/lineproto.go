package agent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AppendLineProtocol appends p in InfluxDB line protocol, with a trailing
// newline and a nanosecond timestamp, to dst. It is
// AppendLineProtocolPrecision with time.Nanosecond.
func AppendLineProtocol(dst []byte, p *Point) []byte {
	return AppendLineProtocolPrecision(dst, p, time.Nanosecond)
}

// AppendLineProtocolPrecision appends p in line protocol with its timestamp
// in units of prec (time.Nanosecond, Microsecond, Millisecond or Second).
//
// Every line it writes decodes — by InfluxDB 1.8 and by the reference decoder
// github.com/influxdata/line-protocol/v2 alike — to the point with its
// measurement, tag keys, tag values and field keys passed through SafeTag
// (line protocol has no way to write invalid UTF-8, a control character or
// a trailing backslash there), string field values made valid UTF-8 with CR
// and LF as spaces, tags with an empty key or value left out (line protocol
// has no empty tags), and fields whose value is NaN or ±Inf left out.
//
// A point that line protocol cannot carry at all is not written, and dst is
// returned unchanged: no measurement (or one starting with "#", a comment),
// no field left, or a time outside what a nanosecond timestamp can hold
// (before 1677-09-21 or after 2262-04-11), which would otherwise wrap to
// another, plausible date. EncodeProblem says which.
func AppendLineProtocolPrecision(dst []byte, p *Point, prec time.Duration) []byte {
	start := len(dst)
	if p.Measurement == "" || p.Measurement[0] == '#' || !lineTimeOK(p.Time) {
		return dst
	}
	dst = appendEscaped(dst, SafeTag(p.Measurement), measurementEscapes)
	for _, t := range p.Tags {
		if t.Value == "" || t.Key == "" {
			continue
		}
		dst = append(dst, ',')
		dst = appendEscaped(dst, SafeTag(t.Key), keyEscapes)
		dst = append(dst, '=')
		dst = appendEscaped(dst, SafeTag(t.Value), keyEscapes)
	}
	sep := byte(' ')
	fields := 0
	for _, f := range p.Fields {
		if f.Key == "" {
			continue
		}
		mark := len(dst)
		dst = append(dst, sep)
		dst = appendEscaped(dst, SafeTag(f.Key), keyEscapes)
		dst = append(dst, '=')
		var ok bool
		dst, ok = appendFieldValue(dst, f.Value)
		if !ok {
			dst = dst[:mark]
			continue
		}
		sep = ','
		fields++
	}
	if fields == 0 {
		return dst[:start]
	}
	if !p.Time.IsZero() {
		if prec <= 0 {
			prec = time.Nanosecond
		}
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Time.UnixNano()/int64(prec), 10)
	}
	return append(dst, '\n')
}

// EncodeProblem returns why AppendLineProtocol writes nothing for p, or ""
// when it writes a line.
func EncodeProblem(p *Point) string {
	switch {
	case p.Measurement == "":
		return "no measurement"
	case p.Measurement[0] == '#':
		return "measurement starts with #"
	case !lineTimeOK(p.Time):
		return fmt.Sprintf("time %s is outside what a nanosecond timestamp can hold", p.Time.UTC().Format(time.RFC3339))
	}
	if len(AppendLineProtocol(nil, p)) == 0 {
		return "no field line protocol can carry"
	}
	return ""
}

// Limits of a nanosecond timestamp: time.Time.UnixNano is undefined beyond.
var (
	minLineTime = time.Unix(0, math.MinInt64)
	maxLineTime = time.Unix(0, math.MaxInt64)
)

func lineTimeOK(t time.Time) bool {
	return t.IsZero() || (!t.Before(minLineTime) && !t.After(maxLineTime))
}

// LineProtocol returns the line protocol for the points, one line each.
func LineProtocol(points []Point) []byte {
	var b []byte
	for i := range points {
		b = AppendLineProtocol(b, &points[i])
	}
	return b
}

func appendFieldValue(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case int64:
		return append(strconv.AppendInt(dst, v, 10), 'i'), true
	case int:
		return append(strconv.AppendInt(dst, int64(v), 10), 'i'), true
	case int32:
		return append(strconv.AppendInt(dst, int64(v), 10), 'i'), true
	case uint32:
		return append(strconv.AppendInt(dst, int64(v), 10), 'i'), true
	case float32:
		return appendFieldValue(dst, float64(v))
	case uint64:
		if v > math.MaxInt64 {
			return strconv.AppendFloat(dst, float64(v), 'f', -1, 64), true
		}
		return append(strconv.AppendUint(dst, v, 10), 'i'), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, false
		}
		// Plain decimals read best ("3.0", "7721903.7"); exponents only
		// where decimals would be absurdly long.
		if a := math.Abs(v); a < 1e15 && (a >= 1e-4 || a == 0) {
			if v == math.Trunc(v) {
				return strconv.AppendFloat(dst, v, 'f', 1, 64), true
			}
			return strconv.AppendFloat(dst, v, 'f', -1, 64), true
		}
		return strconv.AppendFloat(dst, v, 'g', -1, 64), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case string:
		return appendStringField(dst, v), true
	case nil:
		return dst, false
	default:
		return appendFieldValue(dst, fmt.Sprint(v))
	}
}

// appendStringField writes a quoted string field: backslash and quote
// escaped, CR and LF as spaces (InfluxDB 1.8 and the v2 decoder disagree on
// escaped line breaks), invalid UTF-8 as U+FFFD.
func appendStringField(dst []byte, v string) []byte {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, string(utf8.RuneError))
	}
	dst = append(dst, '"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n', '\r':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

const (
	measurementEscapes = ", "
	keyEscapes         = ",= "
)

// appendEscaped writes a name or tag value that SafeTag has made safe: no
// control characters, no trailing backslash. Separators get a backslash; a
// backslash of the value itself stays as it is. Both decoders read "\\," as
// a backslash and an escaped comma, and a backslash before any other
// character as itself, so every value round-trips but one ending in a
// backslash, which SafeTag rules out.
func appendEscaped(dst []byte, s, special string) []byte {
	if !strings.ContainsAny(s, special) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(special, c) >= 0 {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return dst
}
