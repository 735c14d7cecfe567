package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

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
		{classifyCase{name: "partial success rejecting points", kind: agent.Permanent, contains: "rejected 2 data points: bad unit"},
			grpcPartial(2, "bad unit"), nil, ""},
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
		{classifyCase{name: "partial success rejecting points", kind: agent.Permanent, contains: "rejected 3 data points: bad unit"},
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

// TestClassifyDirect covers inputs that need no server.
func TestClassifyDirect(t *testing.T) {
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
	cases := []struct {
		err      error
		kind     agent.ErrorKind
		contains string
	}{
		{context.Canceled, agent.Retryable, "context canceled"},
		{fmt.Errorf("failed to upload metrics: %w", context.DeadlineExceeded), agent.Retryable, "timed out"},
		{errors.New("something new"), agent.Retryable, "something new"},
		{&httpStatusError{Status: 418, Err: errors.New("teapot")}, agent.Retryable, "teapot"},
	}
	for _, c := range cases {
		se, ok := classify(c.err).(*agent.SinkError)
		if !ok || se.Kind != c.kind || !strings.Contains(se.Error(), c.contains) {
			t.Errorf("classify(%v) = %v, want %s containing %q", c.err, se, c.kind, c.contains)
		}
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
