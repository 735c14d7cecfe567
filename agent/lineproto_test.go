package agent

import (
	"testing"
	"time"
)

func TestLineProtocolEdges(t *testing.T) {
	ts := time.Unix(0, 1705332300000000000)
	one := []Field{{"f", int64(1)}}
	cases := []struct {
		name string
		p    Point
		want string
	}{
		{"trailing backslash in tag value is dropped", Point{Measurement: "m", Tags: []Tag{{"diag", `550 C:\`}, {"z", "y"}}, Fields: one, Time: ts},
			`m,diag=550\ C:,z=y f=1i 1705332300000000000` + "\n"},
		{"backslash before a separator is dropped", Point{Measurement: `a\=b`, Tags: []Tag{{"t", `x\,y`}}, Fields: []Field{{`k\ j`, int64(2)}}, Time: ts},
			`a\=b,t=x\,y k\ j=2i 1705332300000000000` + "\n"},
		{"trailing backslash in measurement", Point{Measurement: `a\`, Tags: []Tag{{"u", "x"}}, Fields: one, Time: ts},
			`a,u=x f=1i 1705332300000000000` + "\n"},
		{"newline in tag value", Point{Measurement: "m", Tags: []Tag{{"t", "a\nb"}}, Fields: one, Time: ts},
			`m,t=a\ b f=1i 1705332300000000000` + "\n"},
		{"empty measurement is not written", Point{Fields: one, Time: ts}, ""},
		{"comment-like measurement is not written", Point{Measurement: "#m", Fields: one, Time: ts}, ""},
		{"smaller integer and float types", Point{Measurement: "m", Fields: []Field{{"a", int32(3)}, {"b", float32(0.5)}, {"c", uint32(4)}}, Time: ts},
			`m a=3i,b=0.5,c=4i 1705332300000000000` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(AppendLineProtocol(nil, &c.p)); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}
