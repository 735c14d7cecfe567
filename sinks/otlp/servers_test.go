package otlp

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// grpcHandler answers one OTLP metrics export.
type grpcHandler func(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error)

// fakeMetricsService is a real gRPC server implementing the OTLP
// MetricsService with a handler that the test chooses.
type fakeMetricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	handle grpcHandler
}

func (f *fakeMetricsService) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	return f.handle(ctx, req)
}

// startGRPC serves h on a loopback port and returns host:port.
func startGRPC(t *testing.T, h grpcHandler, opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	colmetricpb.RegisterMetricsServiceServer(srv, &fakeMetricsService{handle: h})
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() { srv.Stop(); wg.Wait() })
	return l.Addr().String()
}

func grpcOK(context.Context, *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// grpcStatus answers with code and message, plus a RetryInfo detail when
// delay > 0.
func grpcStatus(t *testing.T, code codes.Code, msg string, delay time.Duration) grpcHandler {
	return func(context.Context, *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
		st := status.New(code, msg)
		if delay > 0 {
			var err error
			st, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
			if err != nil {
				t.Error(err)
			}
		}
		return nil, st.Err()
	}
}

func grpcPartial(rejected int64, msg string) grpcHandler {
	return func(context.Context, *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
		return &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
			RejectedDataPoints: rejected, ErrorMessage: msg}}, nil
	}
}

// grpcHang waits until the client gives up.
func grpcHang(ctx context.Context, _ *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// refusedAddr returns a loopback host:port where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// decodeHTTPRequest reads an OTLP/HTTP protobuf request.
func decodeHTTPRequest(t *testing.T, r *http.Request) *colmetricpb.ExportMetricsServiceRequest {
	var in io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Errorf("gzip body: %v", err)
			return nil
		}
		in = zr
	}
	body, err := io.ReadAll(in)
	if err != nil {
		t.Error(err)
		return nil
	}
	var req colmetricpb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Errorf("decode request: %v", err)
		return nil
	}
	return &req
}

// writeProto answers an OTLP/HTTP request with a protobuf response.
func writeProto(w http.ResponseWriter, resp *colmetricpb.ExportMetricsServiceResponse) {
	b, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// httpStatus answers with code, the given headers and a text body.
func httpStatus(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func startHTTP(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// resourceHost returns the host.name of a request's first resource.
func resourceHost(req *colmetricpb.ExportMetricsServiceRequest) string {
	for _, rm := range req.GetResourceMetrics() {
		for _, kv := range rm.GetResource().GetAttributes() {
			if kv.GetKey() == attrHostName {
				return kv.GetValue().GetStringValue()
			}
		}
	}
	return ""
}

// countDataPoints counts the data points of a request.
func countDataPoints(req *colmetricpb.ExportMetricsServiceRequest) int {
	n := 0
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				n += len(m.GetGauge().GetDataPoints()) + len(m.GetSum().GetDataPoints())
			}
		}
	}
	return n
}
