package agent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// AppendLineProtocol appends p in InfluxDB line protocol, with a trailing
// newline, to dst. Line protocol cannot carry some things a point can hold, so:
// tags with an empty value are left out, fields whose value is NaN or ±Inf are
// left out, CR and LF become spaces, and a point left with no field is not
// written at all (dst is returned unchanged).
func AppendLineProtocol(dst []byte, p *Point) []byte {
	start := len(dst)
	if p.Measurement == "" || p.Measurement[0] == '#' {
		return dst // not a valid line; "#" starts a comment
	}
	dst = appendEscaped(dst, p.Measurement, measurementEscapes)
	for _, t := range p.Tags {
		if t.Value == "" || t.Key == "" {
			continue
		}
		dst = append(dst, ',')
		dst = appendEscaped(dst, t.Key, keyEscapes)
		dst = append(dst, '=')
		dst = appendEscaped(dst, t.Value, keyEscapes)
	}
	sep := byte(' ')
	fields := 0
	for _, f := range p.Fields {
		mark := len(dst)
		dst = append(dst, sep)
		dst = appendEscaped(dst, f.Key, keyEscapes)
		dst = append(dst, '=')
		var ok bool
		dst, ok = appendFieldValue(dst, f.Value)
		if !ok || f.Key == "" {
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
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Time.UnixNano(), 10)
	}
	return append(dst, '\n')
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
		return append(dst, '"'), true
	case nil:
		return dst, false
	default:
		return appendFieldValue(dst, fmt.Sprint(v))
	}
}

const (
	measurementEscapes = ", "
	keyEscapes         = ",= "
)

func appendEscaped(dst []byte, s, special string) []byte {
	if !strings.ContainsAny(s, special+"\\\r\n") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			dst = append(dst, ' ')
			if strings.IndexByte(special, ' ') >= 0 {
				dst[len(dst)-1] = '\\'
				dst = append(dst, ' ')
			}
		case c == '\\' && (i == len(s)-1 || strings.IndexByte(special, s[i+1]) >= 0):
			// Line protocol has no escape for a backslash itself: one at the
			// end or before a separator would escape what follows and break
			// the line, so it is dropped (as Telegraf does).
		case strings.IndexByte(special, c) >= 0:
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
