package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pmta-agent/pmta-agent/agent"
)

// classifyCase is one row: what a real server answers, and what Write must
// return. ok means Write returns nil.
type classifyCase struct {
	name     string
	ok       bool
	kind     agent.ErrorKind
	delay    time.Duration
	contains string
}

func checkWriteErr(t *testing.T, c classifyCase, err error) {
	t.Helper()
	if c.ok {
		if err != nil {
			t.Fatalf("Write: %v, want success", err)
		}
		return
	}
	if err == nil {
		t.Fatal("Write succeeded, want an error")
	}
	var se *agent.SinkError
	if !errors.As(err, &se) {
		t.Fatalf("Write error %T is not a *agent.SinkError: %v", err, err)
	}
	kind, delay := agent.Classify(err)
	if kind != c.kind || delay != c.delay {
		t.Errorf("kind %s delay %s, want %s %s (%v)", kind, delay, c.kind, c.delay, err)
	}
	if !strings.Contains(err.Error(), c.contains) {
		t.Errorf("error %q does not say %q", err, c.contains)
	}
}

// TestClassifyGRPC drives the real gRPC exporter against a real gRPC server
// answering each status, so the table covers the error values the exporter
// really returns.
func TestClassifyGRPC(t *testing.T) {
	cases := []struct {
		classifyCase
		handler grpcHandler
		opts    []grpc.ServerOption
		addr    string
	}{
		{classifyCase{name: "ok", ok: true}, grpcOK, nil, ""},
		{classifyCase{name: "unavailable", kind: agent.Retryable, contains: "unavailable"},
			grpcStatus(t, codes.Unavailable, "collector busy", 0), nil, ""},
		{classifyCase{name: "unavailable with RetryInfo", kind: agent.Throttled, delay: 3 * time.Second, contains: "collector busy"},
			grpcStatus(t, codes.Unavailable, "collector busy", 3*time.Second), nil, ""},
		{classifyCase{name: "resource exhausted with RetryInfo", kind: agent.Throttled, delay: 7 * time.Second, contains: "throttled"},
			grpcStatus(t, codes.ResourceExhausted, "memory limit", 7*time.Second), nil, ""},
		{classifyCase{name: "resource exhausted", kind: agent.Throttled, contains: "memory limit"},
			grpcStatus(t, codes.ResourceExhausted, "memory limit", 0), nil, ""},
		{classifyCase{name: "RetryInfo capped", kind: agent.Throttled, delay: maxRetryAfter, contains: "throttled"},
			grpcStatus(t, codes.ResourceExhausted, "slow down", 48*time.Hour), nil, ""},
		{classifyCase{name: "deadline exceeded", kind: agent.Retryable, contains: "timed out"},
			grpcStatus(t, codes.DeadlineExceeded, "upstream slow", 0), nil, ""},
		{classifyCase{name: "aborted", kind: agent.Retryable, contains: "Aborted"},
			grpcStatus(t, codes.Aborted, "try again", 0), nil, ""},
		{classifyCase{name: "invalid argument", kind: agent.Permanent, contains: "points rejected"},
			grpcStatus(t, codes.InvalidArgument, "bad data", 0), nil, ""},
		{classifyCase{name: "unauthenticated", kind: agent.Retryable, contains: "check the headers"},
			grpcStatus(t, codes.Unauthenticated, "no token", 0), nil, ""},
		{classifyCase{name: "permission denied", kind: agent.Retryable, contains: "check the headers"},
			grpcStatus(t, codes.PermissionDenied, "wrong tenant", 0), nil, ""},
		{classifyCase{name: "unimplemented", kind: agent.Retryable, contains: "serves no OTLP metrics"},
			grpcStatus(t, codes.Unimplemented, "unknown service", 0), nil, ""},
		{classifyCase{name: "internal", kind: agent.Retryable, contains: "Internal"},
			grpcStatus(t, codes.Internal, "boom", 0), nil, ""},
		// A server's Internal status with the text gRPC uses for a request
		// it could not marshal: the request was fine, so it stays retryable.
		{classifyCase{name: "internal from the server, marshaling text", kind: agent.Retryable, contains: "Internal"},
			grpcStatus(t, codes.Internal, "grpc: error while marshaling: proto: oops", 0), nil, ""},
		// The collector took the export: it counts as written (see
		// TestWritePartialSuccess for the stat).
		{classifyCase{name: "partial success rejecting points", ok: true}, grpcPartial(2, "bad unit"), nil, ""},
		{classifyCase{name: "partial success as a warning", ok: true}, grpcPartial(0, "deprecated field"), nil, ""},
		{classifyCase{name: "message larger than max", kind: agent.TooLarge, contains: "larger than max"},
			grpcOK, []grpc.ServerOption{grpc.MaxRecvMsgSize(256)}, ""},
		{classifyCase{name: "server hangs past the timeout", kind: agent.Retryable, contains: "timed out"}, grpcHang, nil, ""},
		{classifyCase{name: "connection refused", kind: agent.Retryable, contains: "connection refused"}, nil, nil, refusedAddr(t)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := c.addr
			if addr == "" {
				addr = startGRPC(t, c.handler, c.opts...)
			}
			s := newSink(t, Config{Protocol: ProtocolGRPC, Endpoint: addr, Insecure: true, Timeout: 500 * time.Millisecond})
			checkWriteErr(t, c.classifyCase, s.Write(context.Background(), familyPoints()))
		})
	}
}

// TestClassifyHTTP does the same with the real HTTP exporter against
// httptest servers.
func TestClassifyHTTP(t *testing.T) {
	in30s := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		classifyCase
		handler http.HandlerFunc
	}{
		{classifyCase{name: "ok", ok: true}, func(w http.ResponseWriter, r *http.Request) {
			decodeHTTPRequest(t, r)
			writeProto(w, &colmetricpb.ExportMetricsServiceResponse{})
		}},
		{classifyCase{name: "400", kind: agent.Permanent, contains: "points rejected"}, httpStatus(400, "bad metric")},
		{classifyCase{name: "401", kind: agent.Retryable, contains: "check the headers"}, httpStatus(401, "who are you")},
		{classifyCase{name: "403", kind: agent.Retryable, contains: "check the headers"}, httpStatus(403, "forbidden")},
		{classifyCase{name: "404", kind: agent.Retryable, contains: "check the endpoint URL"}, httpStatus(404, "no such path")},
		{classifyCase{name: "413", kind: agent.TooLarge, contains: "too large"}, httpStatus(413, "body too big")},
		{classifyCase{name: "429 with Retry-After", kind: agent.Throttled, delay: 5 * time.Second, contains: "throttled"},
			httpStatus(429, "slow down", "Retry-After", "5")},
		{classifyCase{name: "429 without Retry-After", kind: agent.Throttled, contains: "slow down"}, httpStatus(429, "slow down")},
		{classifyCase{name: "503 with Retry-After", kind: agent.Throttled, delay: 9 * time.Second, contains: "unavailable"},
			httpStatus(503, "restarting", "Retry-After", "9")},
		{classifyCase{name: "503 without Retry-After", kind: agent.Retryable, contains: "restarting"}, httpStatus(503, "restarting")},
		{classifyCase{name: "500", kind: agent.Retryable, contains: "500"}, httpStatus(500, "oops")},
		{classifyCase{name: "502", kind: agent.Retryable, contains: "bad gateway"}, httpStatus(502, "bad gateway")},
		{classifyCase{name: "504", kind: agent.Retryable, contains: "gateway timeout"}, httpStatus(504, "gateway timeout")},
		{classifyCase{name: "partial success rejecting points", ok: true},
			func(w http.ResponseWriter, r *http.Request) {
				decodeHTTPRequest(t, r)
				writeProto(w, &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
					RejectedDataPoints: 3, ErrorMessage: "bad unit"}})
			}},
		{classifyCase{name: "partial success as a warning", ok: true}, func(w http.ResponseWriter, r *http.Request) {
			decodeHTTPRequest(t, r)
			writeProto(w, &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
				ErrorMessage: "deprecated field"}})
		}},
		{classifyCase{name: "server hangs past the timeout", kind: agent.Retryable, contains: "timed out"},
			func(w http.ResponseWriter, r *http.Request) {
				// Read the body first: only then does the server notice the
				// client hanging up.
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startHTTP(t, c.handler)
			s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL, Timeout: 500 * time.Millisecond})
			checkWriteErr(t, c.classifyCase, s.Write(context.Background(), familyPoints()))
		})
	}
	t.Run("503 with an HTTP-date Retry-After", func(t *testing.T) {
		srv := startHTTP(t, httpStatus(503, "restarting", "Retry-After", in30s))
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL})
		err := s.Write(context.Background(), familyPoints())
		kind, delay := agent.Classify(err)
		if kind != agent.Throttled || delay < 25*time.Second || delay > 30*time.Second {
			t.Fatalf("kind %s delay %s, want throttled about 30s (%v)", kind, delay, err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: "http://" + refusedAddr(t)})
		checkWriteErr(t, classifyCase{kind: agent.Retryable, contains: "connection refused"}, s.Write(context.Background(), familyPoints()))
	})
}

// TestClassifyDirect covers the classification of errors as the sink sees
// them after response.wrap, including those that need no server: failures
// that can only repeat for the same points are Permanent, connection
// problems stay retryable.
func TestClassifyDirect(t *testing.T) {
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
	// The error proto.Marshal really returns for an invalid string, as the
	// OTLP/HTTP exporter passes it on.
	_, utf8Err := proto.Marshal(&colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{SchemaUrl: "caf\xe9"}}})
	if utf8Err == nil {
		t.Fatal("proto.Marshal accepted invalid UTF-8")
	}
	// What gRPC returns for the same failure: the cause flattened to text.
	grpcMarshal := status.Errorf(codes.Internal, "grpc: error while marshaling: %v", utf8Err.Error())
	cases := []struct {
		name     string
		err      error // as the exporter returns it
		rec      response
		kind     agent.ErrorKind
		contains string
	}{
		{"http marshal failure", fmt.Errorf("failed to upload metrics: %w", utf8Err), response{},
			agent.Permanent, "invalid UTF-8"},
		{"grpc marshal failure", fmt.Errorf("failed to upload metrics: %w", grpcMarshal), response{attempted: true, encodeErr: utf8Err},
			agent.Permanent, "invalid UTF-8"},
		{"grpc Internal from the server", fmt.Errorf("failed to upload metrics: %w", grpcMarshal), response{attempted: true},
			agent.Retryable, "error while marshaling"},
		{"proto error reading a non-2xx answer", fmt.Errorf("failed: %w", utf8Err), response{attempted: true, status: 502},
			agent.Retryable, "invalid UTF-8"},
		{"grpc invalid argument", status.Error(codes.InvalidArgument, "bad data"), response{attempted: true},
			agent.Permanent, "points rejected"},
		{"http 400", errors.New("failed to send metrics: 400 Bad Request"), response{attempted: true, status: 400},
			agent.Permanent, "points rejected"},
		{"http body over the exporter's limit", errors.New("failed to upload metrics: request body too large: exceeded 67108864 bytes"), response{},
			agent.TooLarge, "too large"},
		{"grpc message over the exporter's limit", errors.New("failed to upload metrics: request message too large: exceeded 67108864 bytes"), response{},
			agent.TooLarge, "too large"},
		{"grpc unavailable", status.Error(codes.Unavailable, "connection refused"), response{attempted: true},
			agent.Retryable, "unavailable"},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), response{attempted: true},
			agent.Retryable, "connection refused"},
		{"cancelled before sending", context.Canceled, response{}, agent.Retryable, "context canceled"},
		{"deadline", fmt.Errorf("failed to upload metrics: %w", context.DeadlineExceeded), response{attempted: true},
			agent.Retryable, "timed out"},
		{"unknown", errors.New("something new"), response{attempted: true}, agent.Retryable, "something new"},
		{"http 418", errors.New("teapot"), response{attempted: true, status: 418}, agent.Retryable, "teapot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			se := classify(c.rec.wrap(c.err, time.Now()))
			if se == nil || se.Kind != c.kind || !strings.Contains(se.Error(), c.contains) {
				t.Errorf("classify(%v) = %v, want %s containing %q", c.err, se, c.kind, c.contains)
			}
		})
	}
	accepted := []struct {
		name string
		err  error
		rec  response
	}{
		{"partial success rejecting points", errors.New("OTLP partial success: bad unit (3 metric data points rejected)"),
			response{attempted: true, status: 200, partial: true, rejected: 3, message: "bad unit"}},
		{"2xx with an unreadable answer", fmt.Errorf("failed to upload metrics: %w", utf8Err), response{attempted: true, status: 200}},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			if se := classify(c.rec.wrap(c.err, time.Now())); se != nil {
				t.Errorf("classify = %v, want nil: the collector took the request", se)
			}
		})
	}
}

// TestClassifyCancelled checks a write whose context is cancelled.
func TestClassifyCancelled(t *testing.T) {
	addr := startGRPC(t, grpcHang)
	s := newSink(t, Config{Protocol: ProtocolGRPC, Endpoint: addr, Insecure: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable {
		t.Fatalf("Write with a cancelled context: %v (%s), want retryable", err, kind)
	}
}

// TestClassifyUnencodable drives the real exporters with a request protobuf
// cannot encode — an attribute that is not valid UTF-8, which the mapping
// never produces (see TestCollectorInvalidUTF8) — to pin the errors they
// really return for it: Permanent, as the same points can only fail the
// same way, and nothing reaches the server.
func TestClassifyUnencodable(t *testing.T) {
	request := func(domain attribute.Set) metricdata.ResourceMetrics {
		return metricdata.ResourceMetrics{
			Resource: resource.Empty(),
			ScopeMetrics: []metricdata.ScopeMetrics{{
				Scope: instrumentation.Scope{Name: scopeName},
				Metrics: []metricdata.Metrics{{Name: "pmta.queue.rcp", Data: metricdata.Gauge[int64]{
					DataPoints: []metricdata.DataPoint[int64]{{Attributes: domain, Time: t0, Value: 1}},
				}}},
			}},
		}
	}
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			rm := request(attribute.NewSet(attribute.String("domain", "caf\xe9.com")))
			var calls atomic.Int64
			var cfg Config
			switch proto {
			case "grpc":
				addr := startGRPC(t, func(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
					calls.Add(1)
					return grpcOK(ctx, req)
				})
				cfg = Config{Protocol: ProtocolGRPC, Endpoint: addr, Insecure: true}
			case "http":
				srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					calls.Add(1)
					writeProto(w, nil)
				}))
				cfg = Config{Protocol: ProtocolHTTP, Endpoint: srv.URL}
			}
			s := newSink(t, cfg)
			err := s.export(context.Background(), &rm)
			t.Logf("exporter's error, wrapped: %v", err)
			se := classify(err)
			if se == nil || se.Kind != agent.Permanent {
				t.Fatalf("classify(%v) = %v, want permanent", err, se)
			}
			if !strings.Contains(se.Error(), "invalid UTF-8") {
				t.Errorf("error %q does not say why", se)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("the server got %d requests", n)
			}
			// The connection still works for a request that encodes.
			rm = request(attributesOf(tags("domain", "caf\xe9.com")))
			if err := s.export(context.Background(), &rm); err != nil {
				t.Fatalf("export of the sanitized request: %v", err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("the server got %d requests, want 1", n)
			}
		})
	}
}
