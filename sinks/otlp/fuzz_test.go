package otlp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pmta-agent/pmta-agent/agent"
)

// captureTransport stands in for the network under the sink's own OTLP/HTTP
// exporter: it keeps each request body and answers 200 with no body.
type captureTransport struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, body)
	c.mu.Unlock()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/x-protobuf"}},
		Body:    io.NopCloser(bytes.NewReader(nil)),
		Request: req,
	}, nil
}

// take returns the bodies kept since the last call.
func (c *captureTransport) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bodies
	c.bodies = nil
	return b
}

// fuzzSink is a sink whose HTTP exporter, built by the sink's own
// constructor, sends through capture; cumulative keeps its totals in memory.
func fuzzSink(f *testing.F, capture http.RoundTripper, cumulative bool) *Sink {
	const endpoint = "http://collector.invalid:4318"
	s, err := New(Config{Protocol: ProtocolHTTP, Endpoint: endpoint, Version: "fuzz"}, discard())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	if s.exp, err = newHTTPExporterOn(s.cfg, endpoint+metricsPath, capture); err != nil {
		f.Fatal(err)
	}
	if cumulative {
		s.state = &cumState{series: make(map[string]cumSeries)} // no path: never saved
	}
	return s
}

// FuzzMapping builds points from arbitrary input — names, tag keys and
// values of any bytes, int, float (NaN and ±Inf too), bool and string
// fields, times across the whole int64 range, each measurement family —
// and writes them through the sink, in delta or cumulative mode, to its
// real OTLP/HTTP exporter. Every Write must either succeed, with request
// bodies that decode as ExportMetricsServiceRequest, hold only valid UTF-8
// and carry real times, or refuse the fuzzed point for good for a reason
// exportProblem documents, after delivering the clean point before it.
func FuzzMapping(f *testing.F) {
	long := strings.Repeat("é", 200) + "\xff"
	seeds := []struct {
		meas, tagKey, tagVal, server, intKey string
		intVal                               int64
		floatKey                             string
		floatVal                             float64
		boolKey                              string
		boolVal                              bool
		strKey, strVal                       string
		sec, nsec                            int64
		shape                                uint8
	}{
		{"pmta_queue", "domain", "caf\xe9.com", "mx1", "rcp", 5, "kb", 1.5, "paused", true, "note", "x", 1705332300, 0, 0},
		{"pmta_qu\xe9ue", "is\xffp", "\x00\x01\x7f\u0085", "mx\xff", "rcp", -1, "k\xe9b", math.NaN(), "", false, "s", "\xff", 1705332300, 0, 0},
		{"", "", "", "", "", 0, "", math.Inf(1), "", false, "", "", 0, 0, 0},
		{"m", "trailing", `back\`, `mx\`, "v", math.MaxInt64, "f", math.Inf(-1), "b", true, "s", long, -1, 999999999, 0},
		{"pmta_acct", "domain", long, "mx1", "count", 41, "bytes", 2048000, "interval_s", true, "type", "d", 1705332300, 0, 1},
		{"pmta_acct", "domain", "d", "mx1", "count", 1, "interval_s", 1e300, "", false, "", "", 9223372036, 854775807, 1},
		{"pmta_acct_diag", "diag", "421 \xc3\x28", "mx1", "interval_s", math.MaxInt64, "count", 7, "", false, "", "", 1705332300, 0, 3 | 4},
		{"pmta_status", "server", "s", "mx1", "out_rcp_total", 9, "uptime_s", 2e9, "up", true, "", "", 1705332300, 0, 2},
		{"pmta_status", "server", "s", "mx1", "out_rcp_total", 9, "uptime_s", 4e9, "up", true, "", "", 100, 0, 2 | 4},
		{"m", "k", "v", "mx1", "v", 1, "", 0, "", false, "", "", math.MinInt64, 0, 0},
		{"m", "k", "v", "mx1", "v", 1, "", 0, "", false, "", "", math.MaxInt64, math.MaxInt64, 0},
		{"m", "k", "v", "mx1", "v", 1, "", 0, "", false, "", "", 9223372036, 854775808, 0},
		{"m", "k", "v", "mx1", "v", 1, "", 0, "", false, "", "", 0, 1, 0},
		{"m", "k", "v", "mx1", "v", 1, "", 0, "", false, "", "", 0, 0, 0},
		{"m", "k", "v", "mx1", "note", 1, "", 0, "", false, "", "", 1705332300, 0, 8},
		{"pmta_acct", "0", "0", "0", "count", 1, "0", 5e299, "", false, "0", "0", 9223372036, 854775807, 0},
	}
	for _, s := range seeds {
		f.Add(s.meas, s.tagKey, s.tagVal, s.server, s.intKey, s.intVal, s.floatKey, s.floatVal, s.boolKey, s.boolVal,
			s.strKey, s.strVal, s.sec, s.nsec, s.shape)
	}
	capture := &captureTransport{}
	delta, cumulative := fuzzSink(f, capture, false), fuzzSink(f, capture, true)

	f.Fuzz(func(t *testing.T, meas, tagKey, tagVal, server, intKey string, intVal int64, floatKey string, floatVal float64,
		boolKey string, boolVal bool, strKey, strVal string, sec, nsec int64, shape uint8,
	) {
		switch shape & 3 {
		case 1:
			meas = measAcct
		case 2:
			meas = "pmta_status"
		case 3:
			meas = measDiag
		}
		var fs []agent.Field
		if shape&8 == 0 { // else: strings only
			fs = append(fs, agent.Field{Key: intKey, Value: intVal}, agent.Field{Key: floatKey, Value: floatVal},
				agent.Field{Key: boolKey, Value: boolVal})
		}
		fs = append(fs, agent.Field{Key: strKey, Value: strVal})
		at := time.Unix(sec, nsec)
		clean := func(server string) agent.Point {
			return agent.NewPoint("pmta_status", tags("server", server), fields("up", int64(1)), t0)
		}
		fuzzed := agent.NewPoint(meas, tags("server", server, tagKey, tagVal), fs, at)
		points := []agent.Point{clean(server), fuzzed, clean(server + "2")}

		s := delta
		if shape&4 != 0 {
			s = cumulative
		}
		capture.take()
		err := s.Write(context.Background(), points)
		bodies := capture.take()
		for _, body := range bodies {
			checkBody(t, body, points)
		}
		if err == nil {
			if problem := exportProblem(&fuzzed); problem != "" {
				t.Fatalf("Write accepted a point with a problem: %s", problem)
			}
			if !representable(at) {
				t.Fatalf("Write accepted a point at %d s %d ns, which OTLP cannot carry", sec, nsec)
			}
			return
		}
		var se *agent.SinkError
		if !errors.As(err, &se) || se.Kind != agent.Permanent || se.Rejected != 1 {
			t.Fatalf("Write: %v, want nil or a permanent refusal of one point", err)
		}
		if n := agent.Settled(err); n != 1 {
			t.Errorf("Settled = %d, want 1 (the clean point before the refused one)", n)
		}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "outside what OTLP can carry") && strings.Contains(msg, "interval end"):
			if (meas != measAcct && meas != measDiag) || !representable(at) {
				t.Errorf("interval end refused for %s at %v: %v", meas, at, err)
			}
		case strings.Contains(msg, "outside what OTLP can carry"):
			if representable(at) {
				t.Errorf("time %d s %d ns refused although OTLP carries it: %v", sec, nsec, err)
			}
		case strings.Contains(msg, "no numeric field"):
			if hasNumber(&fuzzed) {
				t.Errorf("fields %v refused as not numeric: %v", fuzzed.Fields, err)
			}
		default:
			t.Errorf("refused for an undocumented reason: %v", err)
		}
	})
}

// representable says whether OTLP's uint64 nanoseconds since 1970 can hold
// sec, nsec — worked out on the seconds, without time.Time.UnixNano.
func representable(at time.Time) bool {
	const maxSec, maxNsec = math.MaxInt64 / 1_000_000_000, math.MaxInt64 % 1_000_000_000
	sec, nsec := at.Unix(), int64(at.Nanosecond())
	if sec < 0 || (sec == 0 && nsec == 0) {
		return false
	}
	return sec < maxSec || (sec == maxSec && nsec <= maxNsec)
}

// hasNumber reports whether p has a field that can become a data point.
func hasNumber(p *agent.Point) bool {
	for _, f := range p.Fields {
		if f.Key == "" || fieldRole(p.Measurement, f.Key) == roleSkip {
			continue
		}
		switch v := f.Value.(type) {
		case int64, bool:
			return true
		case float64:
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true
			}
		}
	}
	return false
}

// checkBody decodes one request and checks its strings and times.
func checkBody(t *testing.T, body []byte, points []agent.Point) {
	t.Helper()
	var req colmetricpb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("request body does not decode: %v", err)
	}
	checkUTF8(t, req.ProtoReflect(), "request")
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				for _, dp := range append(m.GetGauge().GetDataPoints(), m.GetSum().GetDataPoints()...) {
					checkTimes(t, m, dp, points)
				}
			}
		}
	}
}

// checkTimes checks that a data point has a real time (not 0, not wrapped)
// and a start no later than it; a gauge's time is one of the points' own.
func checkTimes(t *testing.T, m *metricpb.Metric, dp *metricpb.NumberDataPoint, points []agent.Point) {
	t.Helper()
	ts, start := dp.GetTimeUnixNano(), dp.GetStartTimeUnixNano()
	if ts == 0 || ts > math.MaxInt64 {
		t.Fatalf("%s: time %d", m.GetName(), ts)
	}
	if start > ts {
		t.Fatalf("%s: start %d after time %d", m.GetName(), start, ts)
	}
	if m.GetGauge() == nil {
		return
	}
	for i := range points {
		if representable(points[i].Time) && uint64(points[i].Time.UnixNano()) == ts {
			return
		}
	}
	t.Fatalf("%s: gauge time %d is no point's time", m.GetName(), ts)
}

// checkUTF8 walks every string of a message.
func checkUTF8(t *testing.T, m protoreflect.Message, path string) {
	t.Helper()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				checkValue(t, fd, l.Get(i), name)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				checkValue(t, fd.MapValue(), mv, name)
				return true
			})
		default:
			checkValue(t, fd, v, name)
		}
		return true
	})
}

func checkValue(t *testing.T, fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkUTF8(t, v.Message(), path)
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			t.Fatalf("%s: %q is not valid UTF-8", path, v.String())
		}
	}
}
