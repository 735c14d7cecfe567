package otlp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/protobuf/proto"

	"github.com/pmta-agent/pmta-agent/agent"
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
	transport := newTransport(tlsConf)
	client := &http.Client{Timeout: cfg.Timeout, Transport: responseRecorder{base: transport}}
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
		return nil, nil, fmt.Errorf("otlp http exporter: %w", err)
	}
	return exp, transport, nil
}

// newTransport returns Go's default transport settings with tlsConf.
func newTransport(tlsConf *tls.Config) *http.Transport {
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		t := def.Clone()
		t.TLSClientConfig = tlsConf
		return t
	}
	// Replaced by some other package: build the same defaults.
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
	}
}

// response is what the sink's hooks note about one export: the HTTP status
// and headers (responseRecorder), and a partial success (responseRecorder,
// partialInterceptor). The exporters report a partial success only as the
// text of an error type internal to each of them; recording it here gives
// classify a typed value.
type response struct {
	status   int
	header   http.Header
	partial  bool
	rejected int64
	message  string
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

// wrap adds what was recorded to the export's outcome, for classify: the
// HTTP status of a failed request, or the partial success of one that got
// through.
func (r *response) wrap(err error, now time.Time) error {
	if r.partial {
		// Recorded only for a request that got through, so the
		// exporter's error, if any, is its own report of the same.
		return &partialSuccessError{Rejected: r.rejected, Message: r.message}
	}
	if err == nil || r.status == 0 || (r.status >= 200 && r.status < 300) {
		return err
	}
	ra := agent.ParseRetryAfter(r.header.Get("Retry-After"), now, maxRetryAfter)
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
	resp, err := t.base.RoundTrip(req)
	r := responseFrom(req.Context())
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

// partialInterceptor notes a partial success in a gRPC export's reply.
func partialInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r := responseFrom(ctx); err == nil && r != nil {
		if resp, ok := reply.(*colmetricpb.ExportMetricsServiceResponse); ok {
			r.notePartial(resp)
		}
	}
	return err
}
