package otlp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent/transport"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pmta-agent/pmta-agent/agent"
)

const token = "s3cr3t-t0ken-value"

// syncLog is a slog handler's output that tests can read.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestHTTPTLSHeadersSecrets: https with a CA file and an authorization
// header; then a server that echoes the header in its 401 answer, whose
// error and logs must not show the token.
func TestHTTPTLSHeadersSecrets(t *testing.T) {
	var reject sync.Map // set to reject and echo the header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if _, ok := reject.Load("on"); ok {
			httpStatus(401, "invalid credentials: "+auth)(w, r)
			return
		}
		if auth != "Bearer "+token {
			t.Errorf("Authorization %q", auth)
		}
		if r.URL.Path != "/v1/metrics" {
			t.Errorf("path %q", r.URL.Path)
		}
		decodeHTTPRequest(t, r)
		writeProto(w, &colmetricpb.ExportMetricsServiceResponse{})
	}))
	t.Cleanup(srv.Close)
	caFile := writePEM(t, srv.Certificate())

	logs := &syncLog{}
	cfg := Config{Protocol: ProtocolHTTP, Endpoint: srv.URL, TLS: transport.TLSConfig{CAFile: caFile},
		Headers: map[string]string{"Authorization": "Bearer " + token}, Gzip: true}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Write(context.Background(), familyPoints()); err != nil {
		t.Fatalf("Write over TLS: %v", err)
	}

	reject.Store("on", true)
	err = s.Write(context.Background(), familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable {
		t.Fatalf("Write against 401: %v, want retryable", err)
	}
	checkNoSecret(t, err.Error(), logs.String(), fmt.Sprint(cfg), fmt.Sprintf("%#v", cfg))
	if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "check the headers") {
		t.Errorf("error %q: want the scrubbed echo and the hint", err)
	}
}

// TestHTTPMutualTLS: the server requires a client certificate.
func TestHTTPMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, _, ca, caKey, _ := writeCert(t, dir, "ca", nil, nil)
	_, _, _, _, serverPair := writeCert(t, dir, "server", ca, caKey)
	clientCert, clientKey, _, _, _ := writeCert(t, dir, "client", ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		decodeHTTPRequest(t, r)
		writeProto(w, &colmetricpb.ExportMetricsServiceResponse{})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL,
		TLS: transport.TLSConfig{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}})
	if err := s.Write(context.Background(), familyPoints()); err != nil {
		t.Fatalf("Write with a client certificate: %v", err)
	}
	noCert := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL, TLS: transport.TLSConfig{CAFile: caFile}})
	err := noCert.Write(context.Background(), familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable {
		t.Fatalf("Write without a client certificate: %v, want retryable", err)
	}
	untrusted := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL})
	if err := untrusted.Write(context.Background(), familyPoints()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Write to an untrusted server: %v, want a certificate error", err)
	}
}

// TestGRPCTLSHeadersSecrets: gRPC over TLS with a server name and an
// authorization header; a server that echoes the header in its error.
func TestGRPCTLSHeadersSecrets(t *testing.T) {
	dir := t.TempDir()
	caFile, _, ca, caKey, _ := writeCert(t, dir, "ca", nil, nil)
	_, _, _, _, serverPair := writeCert(t, dir, "server", ca, caKey)
	var reject sync.Map
	addr := startGRPC(t, func(ctx context.Context, _ *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		auth := strings.Join(md.Get("authorization"), ",")
		if _, ok := reject.Load("on"); ok {
			return nil, status.Error(codes.Unauthenticated, "bad token "+auth)
		}
		if auth != "Bearer "+token {
			return nil, status.Errorf(codes.InvalidArgument, "authorization %q", auth)
		}
		return &colmetricpb.ExportMetricsServiceResponse{}, nil
	}, grpc.Creds(credentials.NewServerTLSFromCert(&serverPair)))

	logs := &syncLog{}
	cfg := Config{Protocol: ProtocolGRPC, Endpoint: addr,
		TLS:     transport.TLSConfig{CAFile: caFile, ServerName: "collector.test"},
		Headers: map[string]string{"Authorization": "Bearer " + token}, Gzip: true}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Write(context.Background(), familyPoints()); err != nil {
		t.Fatalf("Write over gRPC TLS: %v", err)
	}
	reject.Store("on", true)
	err = s.Write(context.Background(), familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable {
		t.Fatalf("Write against Unauthenticated: %v, want retryable", err)
	}
	checkNoSecret(t, err.Error(), logs.String())
	if !strings.Contains(err.Error(), "bad token [redacted]") {
		t.Errorf("error %q: want the scrubbed echo", err)
	}

	plain := newSink(t, Config{Protocol: ProtocolGRPC, Endpoint: addr, Insecure: true})
	if err := plain.Write(context.Background(), familyPoints()); err == nil {
		t.Error("a plaintext Write to a TLS server succeeded")
	}
}

func checkNoSecret(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, token) {
			t.Errorf("the token leaked into %q", s)
		}
	}
}

func writePEM(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
