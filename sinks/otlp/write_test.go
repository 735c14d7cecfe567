package otlp

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"

	"github.com/pmta-agent/pmta-agent/agent"
)

func serverPoints(servers ...string) []agent.Point {
	pts := make([]agent.Point, 0, len(servers))
	for _, s := range servers {
		pts = append(pts, agent.NewPoint("pmta_status", tags("server", s), fields("up", int64(1)), t0))
	}
	return pts
}

// hostStatus answers each export with the status chosen for its host.name.
func hostStatus(t *testing.T, codes map[string]int) (*sync.Map, http.HandlerFunc) {
	seen := &sync.Map{}
	return seen, func(w http.ResponseWriter, r *http.Request) {
		req := decodeHTTPRequest(t, r)
		host := resourceHost(req)
		n, _ := seen.LoadOrStore(host, new(int))
		*n.(*int)++
		if code := codes[host]; code != 0 {
			httpStatus(code, "no "+host)(w, r)
			return
		}
		writeProto(w, nil)
	}
}

func TestWriteSeveralServers(t *testing.T) {
	t.Run("a failure reports the settled prefix", func(t *testing.T) {
		seen, h := hostStatus(t, map[string]int{"b": 503})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a", "a", "b", "c"))
		var pw *agent.PartialWriteError
		if !errors.As(err, &pw) || pw.Written != 2 || agent.Settled(err) != 2 {
			t.Fatalf("Write: %v, want 2 settled", err)
		}
		if kind, _ := agent.Classify(err); kind != agent.Retryable {
			t.Errorf("kind %s", kind)
		}
		if _, ok := seen.Load("c"); ok {
			t.Error("the export after the failure was sent")
		}
	})
	// A rejection stops the write like any other failure. (Write used to go
	// on past it and count its points as settled; now the delivery loop
	// writes the rest again in halves to find and dead-letter the refused
	// points, so Write claims no progress beyond the exports taken.)
	t.Run("a rejection stops the write", func(t *testing.T) {
		seen, h := hostStatus(t, map[string]int{"b": 400})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a", "b", "b", "c"))
		if kind, _ := agent.Classify(err); kind != agent.Permanent || agent.Settled(err) != 1 {
			t.Fatalf("Write: %v (kind %s, settled %d), want permanent after 1 point", err, kind, agent.Settled(err))
		}
		if _, ok := seen.Load("c"); ok {
			t.Error("the export after the rejection was sent")
		}
	})
	t.Run("all rejected", func(t *testing.T) {
		_, h := hostStatus(t, map[string]int{"a": 400})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a"))
		var pw *agent.PartialWriteError
		if kind, _ := agent.Classify(err); kind != agent.Permanent || errors.As(err, &pw) {
			t.Fatalf("Write: %v, want a plain permanent error", err)
		}
	})
}

// TestWriteRefusesUnexportablePoint: a point OTLP cannot carry — a time
// before 1970 or after 2262, where UnixNano wraps, or no numeric field — is
// neither exported with a wrong time nor counted as written. The points
// before it go out; Write refuses it for good with their progress, so that
// the delivery loop isolates and dead-letters it.
func TestWriteRefusesUnexportablePoint(t *testing.T) {
	up := func(server string, at time.Time, f ...any) agent.Point {
		return agent.NewPoint("pmta_status", tags("server", server), fields(f...), at)
	}
	tests := []struct {
		name    string
		points  []agent.Point
		sent    int // data points the server received
		settled int
		says    string
	}{
		{"before 1970", []agent.Point{up("a", t0, "up", int64(1)), up("a", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), "up", int64(1))},
			1, 1, "outside what OTLP can carry"},
		{"zero time", []agent.Point{up("a", time.Time{}, "up", int64(1))}, 0, 0, "outside what OTLP can carry"},
		{"after 2262", []agent.Point{up("a", t0, "up", int64(1)), up("b", t0, "up", int64(1)),
			up("b", time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), "up", int64(1)), up("b", t0, "up", int64(1))},
			2, 2, "outside what OTLP can carry"},
		{"interval end after 2262", []agent.Point{agent.NewPoint("pmta_acct", tags("server", "a"), fields("count", int64(1), "interval_s", int64(60)),
			time.Unix(0, math.MaxInt64).Add(-time.Second))}, 0, 0, "interval end"},
		{"only strings", []agent.Point{up("a", t0, "up", int64(1)), up("a", t0, "note", "text")}, 1, 1, "no numeric field"},
		{"only NaN and Inf", []agent.Point{up("a", t0, "rate", math.NaN(), "max", math.Inf(1))}, 0, 0, "no numeric field"},
		{"only interval_s", []agent.Point{agent.NewPoint("pmta_acct", tags("server", "a"), fields("interval_s", int64(60)), t0)},
			0, 0, "no numeric field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got atomic.Int64
			srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(int64(countDataPoints(decodeHTTPRequest(t, r))))
				writeProto(w, nil)
			}))
			s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL})
			err := s.Write(context.Background(), tt.points)
			var se *agent.SinkError
			if !errors.As(err, &se) || se.Kind != agent.Permanent || se.Rejected != 1 {
				t.Fatalf("Write: %v, want permanent with Rejected 1", err)
			}
			if n := agent.Settled(err); n != tt.settled {
				t.Errorf("Settled = %d, want %d", n, tt.settled)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			if n := got.Load(); n != int64(tt.sent) {
				t.Errorf("server got %d data points, want %d", n, tt.sent)
			}
		})
	}
}

// TestWritePartialSuccess: an export the collector took while rejecting
// some of its data points counts as written — resending it would duplicate
// what it kept — and the rejected count goes into a stat and a log line
// that does not repeat for every export.
func TestWritePartialSuccess(t *testing.T) {
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			var exports atomic.Int64
			var cfg Config
			switch proto {
			case "grpc":
				addr := startGRPC(t, func(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
					exports.Add(1)
					return grpcPartial(2, "bad unit")(ctx, req)
				})
				cfg = Config{Protocol: ProtocolGRPC, Endpoint: addr, Insecure: true}
			case "http":
				srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					exports.Add(1)
					decodeHTTPRequest(t, r)
					writeProto(w, &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
						RejectedDataPoints: 2, ErrorMessage: "bad unit"}})
				}))
				cfg = Config{Protocol: ProtocolHTTP, Endpoint: srv.URL}
			}
			cfg.Temporality, cfg.StateDir = TemporalityCumulative, t.TempDir()
			logs := &syncLog{}
			s, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			acct := func(iv int) agent.Point {
				return agent.NewPoint("pmta_acct", tags("server", "mx1", "domain", "gmail.com"),
					fields("count", int64(5), "interval_s", int64(60)), t0.Add(time.Duration(iv)*time.Minute))
			}
			for iv := range 3 {
				if err := s.Write(context.Background(), []agent.Point{acct(iv)}); err != nil {
					t.Fatalf("write %d: %v, want success: the collector took the export", iv, err)
				}
			}
			// Accepted means committed: the same interval again is a replay.
			if err := s.Write(context.Background(), []agent.Point{acct(2)}); err != nil {
				t.Fatal(err)
			}
			if n := exports.Load(); n != 3 {
				t.Errorf("%d exports, want 3 (the replay is not exported)", n)
			}
			stats := map[string]any{}
			for _, f := range s.Stats() {
				stats[f.Key] = f.Value
			}
			if stats["rejected_data_points"] != int64(6) || stats["data_points"] != int64(3) || stats["replays_skipped"] != int64(1) {
				t.Errorf("stats %v, want rejected_data_points=6 data_points=3 replays_skipped=1", stats)
			}
			out := logs.String()
			if n := strings.Count(out, "rejected data points"); n != 1 {
				t.Errorf("%d log lines about rejected data points for 3 exports, want 1:\n%s", n, out)
			}
			if !strings.Contains(out, "bad unit") {
				t.Errorf("log does not give the collector's message:\n%s", out)
			}
		})
	}
}

func TestWriteNothingToSend(t *testing.T) {
	_, h := hostStatus(t, nil)
	srv := startHTTP(t, h)
	s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL})
	mixed := []agent.Point{agent.NewPoint("pmta_x", tags("server", "z"), fields("text", "no number", "n", int64(1)), t0)}
	if err := s.Write(context.Background(), mixed); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	stats := map[string]any{}
	for _, f := range s.Stats() {
		stats[f.Key] = f.Value
	}
	if stats["fields_unsupported"] != int64(1) || stats["data_points"] != int64(1) {
		t.Errorf("stats %v", stats)
	}
}

func TestCloseThenWrite(t *testing.T) {
	s, err := New(Config{Protocol: ProtocolGRPC, Insecure: true}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "otlp" {
		t.Errorf("Name %q", s.Name())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err = s.Write(context.Background(), familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Write after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		errs []string // each must appear in the one error
	}{
		{"grpc with a scheme", Config{Endpoint: "http://c:4317"}, []string{"without a scheme"}},
		{"grpc without a port", Config{Endpoint: "collector"}, []string{"host:port"}},
		{"grpc insecure with tls", Config{Insecure: true, TLS: transport.TLSConfig{CAFile: "x"}}, []string{"exclude each other"}},
		{"http without scheme", Config{Protocol: "http", Endpoint: "c:4318"}, []string{"http:// or https://"}},
		{"http with credentials", Config{Protocol: "http", Endpoint: "https://u:p@c"}, []string{"must not carry credentials"}},
		{"http insecure https", Config{Protocol: "http", Endpoint: "https://c", Insecure: true}, []string{"insecure: is set with an https:// endpoint"}},
		{"http tls on plaintext", Config{Protocol: "http", Endpoint: "http://c", TLS: transport.TLSConfig{ServerName: "c"}}, []string{"plaintext http but tls"}},
		{"everything wrong at once", Config{Protocol: "udp", Timeout: -1, Temporality: "weekly",
			Headers: map[string]string{"bad name": "v", "X-Ok": "a\nb"}, Resource: map[string]string{"": "v"}},
			[]string{"protocol: is \"udp\"", "timeout", "temporality: is \"weekly\"", "header name \"bad name\"", "X-Ok", "attribute name is empty"}},
		{"cumulative without a state dir", Config{Temporality: "cumulative"}, []string{"state_dir is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, discard())
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, want := range c.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "a\nb") || strings.Contains(err.Error(), ":p@") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
}

func TestConfigDefaultsAndURL(t *testing.T) {
	cases := []struct {
		cfg      Config
		endpoint string
		url      string
	}{
		{Config{}, DefaultGRPCEndpoint, ""},
		{Config{Protocol: "http"}, DefaultHTTPEndpoint, "http://127.0.0.1:4318/v1/metrics"},
		{Config{Protocol: "http", Endpoint: "https://gw.example/otlp/"}, "https://gw.example/otlp/", "https://gw.example/otlp/v1/metrics"},
		{Config{Protocol: "http", Endpoint: "https://gw.example/v1/metrics"}, "https://gw.example/v1/metrics", "https://gw.example/v1/metrics"},
	}
	for _, c := range cases {
		got := c.cfg.withDefaults()
		if errs := got.check(); len(errs) != 0 {
			t.Fatal(errs)
		}
		u := ""
		if got.Protocol == ProtocolHTTP {
			u = metricsURL(got.Endpoint)
		}
		if got.Endpoint != c.endpoint || u != c.url || got.Timeout != DefaultConfig().Timeout || got.Temporality != TemporalityDelta {
			t.Errorf("%+v: endpoint %q url %q timeout %s temporality %s", c.cfg, got.Endpoint, u, got.Timeout, got.Temporality)
		}
	}
	cfg := Config{Headers: map[string]string{"Authorization": "Bearer " + token}}
	for _, s := range []string{cfg.String(), cfg.GoString(), cfg.LogValue().String()} {
		if strings.Contains(s, token) || !strings.Contains(s, "Authorization:[redacted]") {
			t.Errorf("config shown as %q", s)
		}
	}
}
