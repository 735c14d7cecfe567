package stdout

import (
	"math"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// TestAppendLineProtocolEscaping pins agent.AppendLineProtocol's output, which
// this sink prints verbatim. The expected lines were checked against
// InfluxDB 1.8's own line-protocol parser.
func TestAppendLineProtocolEscaping(t *testing.T) {
	ts := time.Unix(1700000000, 5)
	one := []agent.Field{{Key: "v", Value: int64(1)}}
	tests := []struct {
		name string
		p    agent.Point
		want string
	}{
		{"plain", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: "x"}}, Fields: one, Time: ts},
			"m,t=x v=1i 1700000000000000005\n"},
		{"measurement space and comma", agent.Point{Measurement: "my m,x", Fields: one, Time: ts},
			`my\ m\,x v=1i 1700000000000000005` + "\n"},
		{"measurement equals is literal", agent.Point{Measurement: "a=b", Fields: one, Time: ts},
			"a=b v=1i 1700000000000000005\n"},
		{"tag value space comma equals", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: "a b,c=d"}}, Fields: one, Time: ts},
			`m,t=a\ b\,c\=d v=1i 1700000000000000005` + "\n"},
		{"tag key space comma equals", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "k y,z=", Value: "x"}}, Fields: one, Time: ts},
			`m,k\ y\,z\==x v=1i 1700000000000000005` + "\n"},
		{"tag value quote is literal", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: `a"b`}}, Fields: one, Time: ts},
			`m,t=a"b v=1i 1700000000000000005` + "\n"},
		{"tag value inner backslash is literal", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: `a\b`}}, Fields: one, Time: ts},
			`m,t=a\b v=1i 1700000000000000005` + "\n"},
		{"empty tag value skipped", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "a", Value: ""}, {Key: "b", Value: "x"}}, Fields: one, Time: ts},
			"m,b=x v=1i 1700000000000000005\n"},
		{"empty tag key skipped", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "", Value: "x"}}, Fields: one, Time: ts},
			"m v=1i 1700000000000000005\n"},
		{"newline in tag value becomes escaped space", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: "a\r\nb"}}, Fields: one, Time: ts},
			`m,t=a\ \ b v=1i 1700000000000000005` + "\n"},
		{"field key escapes", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "f k,x=", Value: int64(1)}}, Time: ts},
			`m f\ k\,x\==1i 1700000000000000005` + "\n"},
		{"string field quote and backslash", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "s", Value: `say "hi" C:\`}}, Time: ts},
			`m s="say \"hi\" C:\\" 1700000000000000005` + "\n"},
		{"string field keeps commas spaces equals", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "s", Value: "a, b=c"}}, Time: ts},
			`m s="a, b=c" 1700000000000000005` + "\n"},
		{"string field newline becomes space", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "s", Value: "a\nb"}}, Time: ts},
			`m s="a b" 1700000000000000005` + "\n"},
		{"empty string field", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "s", Value: ""}}, Time: ts},
			`m s="" 1700000000000000005` + "\n"},
		{"integer types", agent.Point{Measurement: "m", Fields: []agent.Field{
			{Key: "a", Value: int64(-3)}, {Key: "b", Value: 7}, {Key: "c", Value: uint64(9)}}, Time: ts},
			"m a=-3i,b=7i,c=9i 1700000000000000005\n"},
		{"uint64 beyond int64 becomes float", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "u", Value: uint64(math.MaxUint64)}}, Time: ts},
			"m u=18446744073709552000 1700000000000000005\n"},
		{"floats", agent.Point{Measurement: "m", Fields: []agent.Field{
			{Key: "a", Value: 3.0}, {Key: "b", Value: 0.25}, {Key: "c", Value: 1e20}, {Key: "d", Value: -2.5e-7}}, Time: ts},
			"m a=3.0,b=0.25,c=1e+20,d=-2.5e-07 1700000000000000005\n"},
		{"bools", agent.Point{Measurement: "m", Fields: []agent.Field{{Key: "t", Value: true}, {Key: "f", Value: false}}, Time: ts},
			"m t=true,f=false 1700000000000000005\n"},
		{"NaN and Inf skipped", agent.Point{Measurement: "m", Fields: []agent.Field{
			{Key: "n", Value: math.NaN()}, {Key: "v", Value: int64(1)}, {Key: "i", Value: math.Inf(-1)}}, Time: ts},
			"m v=1i 1700000000000000005\n"},
		{"nil and empty-key fields skipped", agent.Point{Measurement: "m", Fields: []agent.Field{
			{Key: "n", Value: nil}, {Key: "", Value: int64(2)}, {Key: "v", Value: int64(1)}}, Time: ts},
			"m v=1i 1700000000000000005\n"},
		{"no writable field writes nothing", agent.Point{Measurement: "m", Tags: []agent.Tag{{Key: "t", Value: "x"}},
			Fields: []agent.Field{{Key: "n", Value: math.NaN()}}, Time: ts},
			""},
		{"zero time leaves timestamp to the server", agent.Point{Measurement: "m", Fields: one},
			"m v=1i\n"},
		{"time before epoch", agent.Point{Measurement: "m", Fields: one, Time: time.Unix(-1, 0)},
			"m v=1i -1000000000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep\n")
			got := agent.AppendLineProtocol(prefix, &tt.p)
			if string(got[:len(prefix)]) != "keep\n" {
				t.Fatalf("dst prefix was changed: %q", got)
			}
			if g := string(got[len(prefix):]); g != tt.want {
				t.Errorf("got  %q\nwant %q", g, tt.want)
			}
		})
	}
}

func TestLineProtocolOneLinePerPoint(t *testing.T) {
	ts := time.Unix(10, 0)
	points := []agent.Point{
		{Measurement: "a", Fields: []agent.Field{{Key: "v", Value: int64(1)}}, Time: ts},
		{Measurement: "skipped", Time: ts},
		{Measurement: "b", Fields: []agent.Field{{Key: "v", Value: 2.5}}, Time: ts},
	}
	want := "a v=1i 10000000000\nb v=2.5 10000000000\n"
	if got := string(agent.LineProtocol(points)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
