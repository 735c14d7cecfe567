package queue

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// mixedPoints covers every value type, zero and extreme times, empty and
// repeated strings, and characters line protocol would escape.
func mixedPoints() []agent.Point {
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	return []agent.Point{
		{Measurement: "pmta_status", Tags: []agent.Tag{{Key: "server", Value: "mta01"}},
			Fields: []agent.Field{
				{Key: "up", Value: int64(1)},
				{Key: "min", Value: int64(math.MinInt64)},
				{Key: "max", Value: int64(math.MaxInt64)},
				{Key: "rate", Value: 3.25},
				{Key: "nan", Value: math.NaN()},
				{Key: "inf", Value: math.Inf(-1)},
				{Key: "negzero", Value: math.Copysign(0, -1)},
				{Key: "ok", Value: true},
				{Key: "bad", Value: false},
				{Key: "diag", Value: "550 5.1.1 <#> user \"unknown\"\n, = \\"},
				{Key: "empty", Value: ""},
				{Key: "none", Value: nil},
			}, Time: at.Add(1500 * time.Millisecond)},
		{Measurement: "pmta_acct", Tags: []agent.Tag{{Key: "domain", Value: ""}, {Key: "server", Value: "mta01"}},
			Fields: []agent.Field{{Key: "count", Value: int64(-7)}}, Time: at.Add(-time.Hour)},
		{Measurement: "no_time", Fields: []agent.Field{{Key: "x", Value: int64(0)}}},
		{Measurement: "", Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{Measurement: "far", Fields: []agent.Field{{Key: "y", Value: 1e300}}, Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{Measurement: "old", Time: time.Unix(-1e10, 5)},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for name, points := range map[string][]agent.Point{
		"mixed": mixedPoints(),
		"batch": makePoints(1, 5000, time.Unix(1_700_000_000, 0)),
		"none":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			b := AppendPoints(nil, points)
			got, err := DecodePoints(b)
			if err != nil {
				t.Fatalf("DecodePoints: %v", err)
			}
			if d := diffPoints(got, points); d != "" {
				t.Fatal(d)
			}
			// A prefix in dst is kept and not part of the blob.
			b2 := AppendPoints([]byte("prefix"), points)
			if !bytes.Equal(b2[6:], b) || string(b2[:6]) != "prefix" {
				t.Fatal("AppendPoints does not append")
			}
		})
	}
}

// Other value types are normalised as line protocol does.
func TestCodecNormalisesTypes(t *testing.T) {
	type custom struct{ A int }
	cases := []struct {
		in   any
		want any
	}{
		{int(-3), int64(-3)},
		{int32(5), int64(5)},
		{uint32(7), int64(7)},
		{uint64(9), int64(9)},
		{uint64(math.MaxUint64), float64(math.MaxUint64)},
		{float32(1.5), float64(1.5)},
		{int16(4), "4"},
		{custom{2}, "{2}"},
		{time.Duration(3), "3ns"},
	}
	for _, c := range cases {
		b := AppendPoints(nil, []agent.Point{{Measurement: "m", Fields: []agent.Field{{Key: "f", Value: c.in}}}})
		got, err := DecodePoints(b)
		if err != nil {
			t.Fatalf("%T: %v", c.in, err)
		}
		if v := got[0].Fields[0].Value; v != c.want {
			t.Errorf("%T(%v) decoded as %T(%v), want %T(%v)", c.in, c.in, v, v, c.want, c.want)
		}
	}
}

func TestCodecStringTable(t *testing.T) {
	points := makePoints(2, 1000, time.Unix(1_700_000_000, 0))
	b := AppendPoints(nil, points)
	// Every point repeats the same keys and a few hundred values: the
	// table must keep each point well below its line-protocol size.
	if lp := len(agent.LineProtocol(points)); len(b)*3 > lp {
		t.Errorf("blob is %d bytes for %d bytes of line protocol; want under a third", len(b), lp)
	}
	got, _ := DecodePoints(b)
	// Decoded points must not share slices: appending to one point's tags
	// cannot change another's.
	got[0].Tags = append(got[0].Tags, agent.Tag{Key: "zz", Value: "x"})
	if d := diffPoints(got[1:], points[1:]); d != "" {
		t.Fatal(d)
	}
}

func TestCodecDetectsCorruption(t *testing.T) {
	b := AppendPoints(nil, mixedPoints())
	for i := range b {
		for _, bit := range []byte{1, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= bit
			if _, err := DecodePoints(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flipping bit %#x of byte %d: err = %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
	for n := range len(b) {
		if _, err := DecodePoints(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v", n, err)
		}
	}
}

// The golden blob pins the on-disk format: a queue written by one version
// must be readable by the next. Regenerate with -update only on purpose.
func TestCodecGolden(t *testing.T) {
	path := filepath.Join("testdata", "points-v1.bin")
	b := AppendPoints(nil, mixedPoints())
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("encoding changed: %d bytes, golden %d; a format change needs a new codecVersion", len(b), len(want))
	}
	got, err := DecodePoints(want)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffPoints(got, mixedPoints()); d != "" {
		t.Fatal(d)
	}
}

// FuzzDecode feeds garbage to the decoders: they may refuse it, never panic
// or allocate beyond the input's size, and what they accept re-encodes to
// points that decode the same.
func FuzzDecode(f *testing.F) {
	f.Add(AppendPoints(nil, mixedPoints()))
	f.Add(AppendPoints(nil, makePoints(3, 20, time.Unix(1_700_000_000, 0))))
	f.Add(AppendPoints(nil, nil))
	f.Add([]byte{})
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodePoints(b)
		parseRecHeader(b)
		// Past the CRC: the body decoder on its own.
		points, err := decodeBody(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := DecodePoints(AppendPoints(nil, points))
		if err != nil {
			t.Fatalf("re-encoded points do not decode: %v", err)
		}
		if d := diffPoints(again, points); d != "" {
			t.Fatal(d)
		}
	})
}
