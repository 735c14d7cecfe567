package poller

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PowerMTA writes the same value differently depending on version and
// format: a JSON number, a numeric string, XML text, a boolean, 0/1 or
// yes/no. The flex types below accept all of those. They never fail a whole
// document: a value that cannot be read sets bad, so that the caller decides
// whether to skip a row or leave out one field.

// flexInt is an integer that may arrive as a number, a numeric string or text.
type flexInt struct {
	v   int64
	ok  bool // present and valid
	bad bool // present but unreadable
}

// flexFloat is a float that may arrive as a number, a numeric string or text.
type flexFloat struct {
	v   float64
	ok  bool
	bad bool
}

// flexBool is a flag that may arrive as a boolean, 0/1, yes/no or true/false.
type flexBool struct {
	v   bool
	ok  bool
	bad bool
}

// flexString is a name that may arrive as a string or, for names made only of
// digits, as a JSON number.
type flexString struct {
	v   string
	ok  bool
	bad bool
}

// jsonScalar reduces a JSON value to its text. isNull is true for null; ok is
// false for objects and arrays, which no flex type accepts.
func jsonScalar(data []byte) (text string, isNull, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "", false, false
	}
	switch data[0] {
	case 'n':
		return "", true, string(data) == "null"
	case '"':
		if s, ok := plainString(data); ok {
			return s, false, true
		}
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", false, false
		}
		return s, false, true
	case '{', '[':
		return "", false, false
	default: // number or boolean literal
		return string(data), false, true
	}
}

// plainString returns the text of a JSON string that has nothing to
// unquote (no escape, valid UTF-8) without json.Unmarshal, which allocates
// for each value. The decoder has checked the syntax already.
func plainString(data []byte) (string, bool) {
	if len(data) < 2 {
		return "", false
	}
	in := data[1 : len(data)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

func (f *flexInt) UnmarshalJSON(data []byte) error {
	unmarshalScalar(data, f.set, func() { *f = flexInt{bad: true} })
	return nil
}

func (f *flexInt) UnmarshalText(text []byte) error {
	f.set(string(text))
	return nil
}

func (f *flexInt) set(s string) {
	*f = flexInt{}
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return
	case "true":
		f.v, f.ok = 1, true
		return
	case "false":
		f.v, f.ok = 0, true
		return
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		f.v, f.ok = v, true
		return
	}
	// "84312.0" or "1e3": accept an integral float within int64 range.
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || math.Abs(v) > 1<<62 {
		f.bad = true
		return
	}
	f.v, f.ok = int64(v), true
}

func (f *flexFloat) UnmarshalJSON(data []byte) error {
	unmarshalScalar(data, f.set, func() { *f = flexFloat{bad: true} })
	return nil
}

func (f *flexFloat) UnmarshalText(text []byte) error {
	f.set(string(text))
	return nil
}

func (f *flexFloat) set(s string) {
	*f = flexFloat{}
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		f.bad = true
		return
	}
	f.v, f.ok = v, true
}

func (f *flexBool) UnmarshalJSON(data []byte) error {
	unmarshalScalar(data, f.set, func() { *f = flexBool{bad: true} })
	return nil
}

func (f *flexBool) UnmarshalText(text []byte) error {
	f.set(string(text))
	return nil
}

func (f *flexBool) set(s string) {
	*f = flexBool{}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
	case "1", "yes", "true", "y", "on":
		f.v, f.ok = true, true
	case "0", "no", "false", "n", "off":
		f.v, f.ok = false, true
	default:
		f.bad = true
	}
}

func (f *flexString) UnmarshalJSON(data []byte) error {
	unmarshalScalar(data, f.set, func() { *f = flexString{bad: true} })
	return nil
}

func (f *flexString) UnmarshalText(text []byte) error {
	f.set(string(text))
	return nil
}

func (f *flexString) set(s string) {
	*f = flexString{}
	if s = strings.TrimSpace(s); s != "" {
		f.v, f.ok = s, true
	}
}

// unmarshalScalar is the JSON decoding every flex type shares: null is
// absent (set of the empty text, which every set reads as absent), an object
// or array is bad, anything else is text for set.
func unmarshalScalar(data []byte, set func(string), markBad func()) {
	text, isNull, ok := jsonScalar(data)
	switch {
	case isNull:
		set("")
	case !ok:
		markBad()
	default:
		set(text)
	}
}

// int01 turns a flag into the int64 0/1 that InfluxDB stores for flags.
func int01(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
