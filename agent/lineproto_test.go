package agent

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

func TestLineProtocolEdges(t *testing.T) {
	ts := time.Unix(0, 1705332300000000000)
	one := []Field{{"f", int64(1)}}
	cases := []struct {
		name string
		p    Point
		want string
	}{
		{"trailing backslash in tag value becomes U+FFFD", Point{Measurement: "m", Tags: []Tag{{"diag", `550 C:\`}, {"z", "y"}}, Fields: one, Time: ts},
			`m,diag=550\ C:` + "\uFFFD" + `,z=y f=1i 1705332300000000000` + "\n"},
		{"backslash before a separator is kept", Point{Measurement: `a\=b`, Tags: []Tag{{"t", `x\,y`}}, Fields: []Field{{`k\ j`, int64(2)}}, Time: ts},
			`a\=b,t=x\\,y k\\ j=2i 1705332300000000000` + "\n"},
		{"two backslashes at the end of a domain", Point{Measurement: "m", Tags: []Tag{{"domain", `endbs\\`}, {"z", "y"}}, Fields: one, Time: ts},
			`m,domain=endbs\` + "\uFFFD" + `,z=y f=1i 1705332300000000000` + "\n"},
		{"trailing backslash in measurement", Point{Measurement: `a\`, Tags: []Tag{{"u", "x"}}, Fields: one, Time: ts},
			"a\uFFFD,u=x f=1i 1705332300000000000\n"},
		{"newline in tag value", Point{Measurement: "m", Tags: []Tag{{"t", "a\nb"}}, Fields: one, Time: ts},
			`m,t=a\ b f=1i 1705332300000000000` + "\n"},
		{"invalid UTF-8 in tag value", Point{Measurement: "m", Tags: []Tag{{"domain", "caf\xe9.com"}}, Fields: one, Time: ts},
			"m,domain=caf\uFFFD.com f=1i 1705332300000000000\n"},
		{"empty measurement is not written", Point{Fields: one, Time: ts}, ""},
		{"comment-like measurement is not written", Point{Measurement: "#m", Fields: one, Time: ts}, ""},
		{"year 1000 is not written", Point{Measurement: "m", Fields: one, Time: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"year 9999 is not written", Point{Measurement: "m", Fields: one, Time: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"no time", Point{Measurement: "m", Fields: one}, "m f=1i\n"},
		{"smaller integer and float types", Point{Measurement: "m", Fields: []Field{{"a", int32(3)}, {"b", float32(0.5)}, {"c", uint32(4)}}, Time: ts},
			`m a=3i,b=0.5,c=4i 1705332300000000000` + "\n"},
		{"string field", Point{Measurement: "m", Fields: []Field{{"s", "a\"b\\c\nd\xff"}}, Time: ts},
			`m s="a\"b\\c d` + "\uFFFD" + `" 1705332300000000000` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(AppendLineProtocol(nil, &c.p)); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if c.want != "" {
				checkDecodes(t, &c.p, []byte(c.want))
			} else if EncodeProblem(&c.p) == "" {
				t.Errorf("EncodeProblem says nothing for a point that is not written")
			}
		})
	}
}

func TestLineProtocolPrecision(t *testing.T) {
	p := Point{Measurement: "m", Fields: []Field{{"f", int64(1)}}, Time: time.Unix(1705332300, 123456789)}
	for prec, want := range map[time.Duration]string{
		time.Nanosecond: "1705332300123456789", time.Microsecond: "1705332300123456",
		time.Millisecond: "1705332300123", time.Second: "1705332300",
	} {
		if got := string(AppendLineProtocolPrecision(nil, &p, prec)); got != "m f=1i "+want+"\n" {
			t.Errorf("%s: got %q", prec, got)
		}
	}
}

// decodedPoint is a point as the reference decoder reads it back.
type decodedPoint struct {
	measurement string
	tags        []Tag
	fields      []Field
	time        time.Time
}

// decodeLines reads line protocol with github.com/influxdata/line-protocol/v2.
func decodeLines(b []byte) ([]decodedPoint, error) {
	dec := lineprotocol.NewDecoderWithBytes(b)
	var out []decodedPoint
	for dec.Next() {
		var p decodedPoint
		m, err := dec.Measurement()
		if err != nil {
			return nil, err
		}
		p.measurement = string(m)
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			p.tags = append(p.tags, Tag{string(k), string(v)})
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			p.fields = append(p.fields, Field{string(k), v.Interface()})
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			return nil, err
		}
		p.time = ts
		out = append(out, p)
	}
	return out, nil
}

// wantDecoded is what a point must decode to, following the documented
// transformations of AppendLineProtocol.
func wantDecoded(p *Point) decodedPoint {
	w := decodedPoint{measurement: SafeTag(p.Measurement), time: p.Time}
	for _, t := range p.Tags {
		if t.Key != "" && t.Value != "" {
			w.tags = append(w.tags, Tag{SafeTag(t.Key), SafeTag(t.Value)})
		}
	}
	for _, f := range p.Fields {
		if f.Key == "" {
			continue
		}
		v := f.Value
		switch x := v.(type) {
		case int:
			v = int64(x)
		case int32:
			v = int64(x)
		case uint32:
			v = int64(x)
		case float32:
			v = float64(x)
		case uint64:
			if x > math.MaxInt64 {
				v = float64(x)
			} else {
				v = int64(x)
			}
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
		case string:
			x = strings.ToValidUTF8(x, "\uFFFD")
			v = strings.NewReplacer("\n", " ", "\r", " ").Replace(x)
		}
		w.fields = append(w.fields, Field{SafeTag(f.Key), v})
	}
	return w
}

func checkDecodes(t *testing.T, p *Point, line []byte) {
	t.Helper()
	got, err := decodeLines(line)
	if err != nil {
		t.Fatalf("line-protocol/v2 refuses %q: %v", line, err)
	}
	if len(got) != 1 {
		t.Fatalf("%q decodes to %d points", line, len(got))
	}
	want := wantDecoded(p)
	g := got[0]
	if g.measurement != want.measurement || !slices.Equal(g.tags, want.tags) || !g.time.Equal(want.time) {
		t.Fatalf("%q decodes to %q %q %v, want %q %q %v", line, g.measurement, g.tags, g.time, want.measurement, want.tags, want.time)
	}
	if len(g.fields) != len(want.fields) {
		t.Fatalf("%q decodes to fields %v, want %v", line, g.fields, want.fields)
	}
	for i := range g.fields {
		if g.fields[i].Key != want.fields[i].Key || !sameValue(g.fields[i].Value, want.fields[i].Value) {
			t.Fatalf("%q: field %d decodes to %v, want %v", line, i, g.fields[i], want.fields[i])
		}
	}
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	case float64:
		g, ok := got.(float64)
		return ok && (g == w || math.Abs(g-w) <= 1e-12*math.Abs(w))
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case string:
		g, ok := got.(string)
		return ok && g == w
	}
	return false
}

// FuzzLineProtocol checks the encoder against the reference decoder: every
// line written decodes to the point's measurement, tags, fields and time as
// AppendLineProtocol documents them; a point that is not written is one
// EncodeProblem names.
func FuzzLineProtocol(f *testing.F) {
	f.Add("pmta_acct", "domain", "caf\xe9.com/v1", "diag", `550 C:\`, "count", int64(7), 1.5, "s", int64(1705332300000000000))
	f.Add("m", "k", `endbs\\`, "t", "a\\,b= c", "f", int64(-1), math.NaN(), "x\"y\\", int64(math.MinInt64))
	f.Add("m\\", "k=", "\x00\x1f\x7f\u0085", "k\\", strings.Repeat("é", 200), "f\\", int64(0), math.Inf(1), "\n\r", int64(math.MaxInt64))
	f.Add("#c", "", "v", "k", "", "", int64(0), 0.0, "", int64(0))
	f.Fuzz(func(t *testing.T, meas, k1, v1, k2, v2, fk string, iv int64, fv float64, sv string, ns int64) {
		p := NewPoint(meas, []Tag{{k1, v1}, {k2, v2}}, []Field{{fk, iv}, {fk + "_f", fv}, {fk + "_s", sv}, {fk + "_b", iv%2 == 0}}, time.Unix(0, ns))
		// Keys must be distinct after SafeTag: the encoder writes what it
		// is given, and duplicate keys are the caller's mistake.
		if SafeTag(k1) == SafeTag(k2) || fk == "" {
			return
		}
		line := AppendLineProtocol(nil, &p)
		if len(line) == 0 {
			if EncodeProblem(&p) == "" {
				t.Fatalf("point %+v not written, and EncodeProblem says nothing", p)
			}
			return
		}
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one line: %q", line)
		}
		if !utf8.Valid(line) {
			t.Fatalf("invalid UTF-8: %q", line)
		}
		checkDecodes(t, &p, line)
	})
}

// TestLineProtocolRandomTagValues is the differential test the hostile-input
// report ran: 200,000 random tag values, drawn mostly from the characters
// line protocol treats specially, each written and read back by the
// reference decoder. Before the escaping fix 1,673 of them were refused.
func TestLineProtocolRandomTagValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\\\\\\,,= \"'\t\n\x00\x7fab.é\xe9\xff")
	ts := time.Unix(1705332300, 0)
	refused := 0
	buf := make([]byte, 0, 64)
	for i := 0; i < 200_000; i++ {
		buf = buf[:0]
		for n := 1 + rng.IntN(12); n > 0; n-- {
			buf = append(buf, alphabet[rng.IntN(len(alphabet))])
		}
		p := Point{Measurement: "m", Tags: []Tag{{"domain", string(buf)}, {"z", "y"}}, Fields: []Field{{"count", int64(1)}}, Time: ts}
		got, err := decodeLines(AppendLineProtocol(nil, &p))
		if err != nil || len(got) != 1 || got[0].tags[0].Value != SafeTag(string(buf)) {
			refused++
			if refused <= 5 {
				t.Errorf("value %q: decoded %v, err %v", buf, got, err)
			}
		}
	}
	if refused > 0 {
		t.Errorf("%d of 200,000 random tag values did not round-trip", refused)
	}
}
