package otelcoltest

import (
	"testing"
	"time"
)

// A line as the collector's file exporter wrote it, and a second line still
// being written.
const sample = `{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"mx1"}},{"key":"n","value":{"intValue":"3"}}]},"scopeMetrics":[{"scope":{"name":"s"},"metrics":[{"name":"a","unit":"1","sum":{"dataPoints":[{"attributes":[{"key":"k","value":{"stringValue":"v"}}],"startTimeUnixNano":"1699999990000000000","timeUnixNano":"1700000000000000000","asInt":"5"},{"timeUnixNano":"1700000000000000000"}],"aggregationTemporality":1,"isMonotonic":true}},{"name":"g","unit":"s","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":0.25}]}}]}]}]}
{"resourceMetrics":[{"reso`

func TestParseFile(t *testing.T) {
	pts, err := ParseFile([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 {
		t.Fatalf("%d points, want 3: %+v", len(pts), pts)
	}
	a := pts[0]
	if a.Name != "a" || a.Type != "sum" || a.Temporality != "delta" || !a.Monotonic || a.Int != 5 || a.IsFloat ||
		a.Attributes["k"] != "v" || a.Resource["host.name"] != "mx1" || a.Resource["n"] != "3" || a.Scope != "s" ||
		!a.Start.Equal(time.Unix(1699999990, 0)) || !a.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("sum point: %+v", a)
	}
	if z := pts[1]; z.Int != 0 || !z.Start.IsZero() {
		t.Errorf("zero point: %+v", z)
	}
	if g := pts[2]; g.Type != "gauge" || g.Temporality != "" || !g.IsFloat || g.Value() != 0.25 || g.Unit != "s" {
		t.Errorf("gauge point: %+v", g)
	}
	if _, err := ParseFile([]byte("{not json}\n")); err == nil {
		t.Error("a broken complete line parsed")
	}
}
