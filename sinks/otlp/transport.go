package otlp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// exporter is what the sink needs of otlpmetricgrpc.Exporter and
// otlpmetrichttp.Exporter.
type exporter interface {
	Export(ctx context.Context, rm *metricdata.ResourceMetrics) error
	Shutdown(ctx context.Context) error
}

// reconnectMax caps gRPC's back-off between connection attempts.
const reconnectMax = 15 * time.Second

// Every setting is passed explicitly, so that the OTEL_EXPORTER_OTLP_*
// environment variables, which the exporters read first, cannot change what
// the configuration says. Retries are off: the delivery loop owns them.

func newGRPCExporter(cfg Config, tlsConf *tls.Config) (exporter, error) {
	creds := insecure.NewCredentials()
	if !cfg.Insecure {
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(tlsConf)
	}
	compressor := encoding.Identity
	if cfg.Gzip {
		compressor = gzip.Name
	}
	headers := cfg.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	// New does not connect: grpc.NewClient dials on the first export.
	exp, err := otlpmetricgrpc.New(context.Background(),
		otlpmetricgrpc.WithEndpoint(cfg.Endpoint),
		otlpmetricgrpc.WithTLSCredentials(creds),
		otlpmetricgrpc.WithHeaders(headers),
		otlpmetricgrpc.WithTimeout(cfg.Timeout),
		otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
		otlpmetricgrpc.WithDialOption(
			grpc.WithDefaultCallOptions(grpc.UseCompressor(compressor)),
			grpc.WithChainUnaryInterceptor(partialInterceptor),
			// gRPC's reconnect back-off grows to 2 minutes by default;
			// after a long outage that would hold the data back that
			// long once the collector is back.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMax},
				MinConnectTimeout: 20 * time.Second,
			}),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("otlp grpc exporter: %w", err)
	}
	return exp, nil
}

// newHTTPExporter builds the OTLP/HTTP exporter on our own client, so that
// responses can be recorded (see responseRecorder). url is the full metrics
// URL, https or http. It returns the transport for closing idle connections.
func newHTTPExporter(cfg Config, url string, tlsConf *tls.Config) (exporter, *http.Transport, error) {
	tr := transport.NewHTTP(tlsConf)
	exp, err := newHTTPExporterOn(cfg, url, tr)
	if err != nil {
		return nil, nil, err
	}
	return exp, tr, nil
}

// newHTTPExporterOn builds the OTLP/HTTP exporter sending through base (the
// fuzz test passes a round tripper that keeps the request bodies).
func newHTTPExporterOn(cfg Config, url string, base http.RoundTripper) (exporter, error) {
	client := &http.Client{Timeout: cfg.Timeout, Transport: responseRecorder{base: base}}
	compression := otlpmetrichttp.NoCompression
	if cfg.Gzip {
		compression = otlpmetrichttp.GzipCompression
	}
	headers := cfg.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	exp, err := otlpmetrichttp.New(context.Background(),
		otlpmetrichttp.WithEndpointURL(url), // also sets plaintext for http://
		otlpmetrichttp.WithHTTPClient(client),
		otlpmetrichttp.WithHeaders(headers),
		otlpmetrichttp.WithCompression(compression),
		otlpmetrichttp.WithTimeout(cfg.Timeout),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
	)
	if err != nil {
		return nil, fmt.Errorf("otlp http exporter: %w", err)
	}
	return exp, nil
}

// response is what the sink's hooks note about one export: whether a
// request was attempted at all, the HTTP status and headers
// (responseRecorder), a partial success (responseRecorder,
// partialInterceptor), and a gRPC request that could not be marshalled
// (partialInterceptor). The exporters report these only as text or as error
// types internal to each of them; recording them here gives classify typed
// values.
type response struct {
	attempted bool  // the request reached the transport (HTTP) or the gRPC client
	encodeErr error // the gRPC request could not be marshalled
	status    int
	header    http.Header
	partial   bool
	rejected  int64
	message   string
}

type responseKey struct{}

// withResponse returns a context under which the hooks record the answer
// into the returned *response.
func withResponse(ctx context.Context) (context.Context, *response) {
	r := &response{}
	return context.WithValue(ctx, responseKey{}, r), r
}

func responseFrom(ctx context.Context) *response {
	r, _ := ctx.Value(responseKey{}).(*response)
	return r
}

// notePartial records a partial success from an OTLP response, if it has
// one.
func (r *response) notePartial(resp *colmetricpb.ExportMetricsServiceResponse) {
	ps := resp.GetPartialSuccess()
	if ps == nil || (ps.GetRejectedDataPoints() == 0 && ps.GetErrorMessage() == "") {
		return
	}
	r.partial, r.rejected, r.message = true, ps.GetRejectedDataPoints(), ps.GetErrorMessage()
}

// wrap adds what was recorded to the export's outcome, for classify.
func (r *response) wrap(err error, now time.Time) error {
	if r.partial {
		// Recorded only for a request that got through, so the
		// exporter's error, if any, is its own report of the same.
		return &partialSuccessError{Rejected: r.rejected, Message: r.message}
	}
	if err == nil {
		return nil
	}
	if r.encodeErr != nil {
		return &encodeError{Err: err}
	}
	if !r.attempted {
		// The exporter failed before sending anything.
		switch {
		case errors.Is(err, proto.Error):
			// OTLP/HTTP marshals the request itself and returns
			// the protobuf error ("string field contains invalid
			// UTF-8"), which proto.Error matches.
			return &encodeError{Err: err}
		case strings.Contains(err.Error(), "too large: exceeded"):
			// The exporters' own size limit: "request body too
			// large: exceeded N bytes" (HTTP), "request message
			// too large: exceeded N bytes" (gRPC).
			return &sizeLimitError{Err: err}
		}
		return err
	}
	if r.status == 0 {
		return err
	}
	if r.status >= 200 && r.status < 300 {
		// The collector answered 2xx: it took the request, even if its
		// answer could not be read. Sending it again would duplicate
		// it, so it counts as accepted, with a warning.
		return &partialSuccessError{Message: "the answer to an accepted request could not be read: " + err.Error(), Unread: true}
	}
	ra := transport.ParseRetryAfter(r.header.Get("Retry-After"), now, maxRetryAfter)
	return &httpStatusError{Status: r.status, RetryAfter: ra, Err: err}
}

// maxResponseBody bounds the success body read for a partial success (the
// exporter's own limit).
const maxResponseBody = 4 << 20

// responseRecorder passes requests on and notes each response's status and
// headers, and a partial success in a protobuf 2xx body, in the request
// context's *response, if any.
type responseRecorder struct{ base http.RoundTripper }

func (t responseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r := responseFrom(req.Context())
	if r != nil {
		r.attempted = true
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || r == nil {
		return resp, err
	}
	r.status, r.header = resp.StatusCode, resp.Header.Clone()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Content-Type") != "application/x-protobuf" || resp.Body == nil {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	// The exporter reads the body after us.
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var msg colmetricpb.ExportMetricsServiceResponse
	if proto.Unmarshal(body, &msg) == nil {
		r.notePartial(&msg)
	}
	return resp, nil
}

// partialInterceptor notes in the export's *response that the request was
// attempted, a partial success in the reply, and a request that could not
// be marshalled.
func partialInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
) error {
	r := responseFrom(ctx)
	if r != nil {
		r.attempted = true
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r == nil {
		return err
	}
	if err == nil {
		if resp, ok := reply.(*colmetricpb.ExportMetricsServiceResponse); ok {
			r.notePartial(resp)
		}
		return nil
	}
	r.encodeErr = marshalFailure(err, req)
	return err
}

// grpcMarshalFailure starts the status message gRPC returns when it cannot
// encode a request (rpc_util.go: codes.Internal "grpc: error while
// marshaling: <cause>"). The cause is flattened to text.
const grpcMarshalFailure = "grpc: error while marshaling"

// marshalFailure returns the local marshalling error when err is gRPC's
// report of one, or nil. A server could send the same status text, so the
// request is marshalled again to be sure; that happens only on this error
// path.
func marshalFailure(err error, req any) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Internal || !strings.HasPrefix(st.Message(), grpcMarshalFailure) {
		return nil
	}
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	if _, merr := proto.Marshal(m); merr != nil {
		return merr
	}
	return nil
}
