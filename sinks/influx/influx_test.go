package influx

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestWriteRequest(t *testing.T) {
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, noContent())
			s := newSink(t, Config{URL: srv.URL, Org: "acme", Bucket: "pmta", Token: "tok-123", Gzip: gz})
			points := testPoints(3)
			if err := s.Write(context.Background(), points); err != nil {
				t.Fatalf("Write: %v", err)
			}
			reqs := srv.got()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/api/v2/write" {
				t.Errorf("request %s %s, want POST /api/v2/write", r.Method, r.Path)
			}
			for key, want := range map[string]string{"org": "acme", "bucket": "pmta", "precision": "ns"} {
				if got := r.Query.Get(key); got != want {
					t.Errorf("query %s = %q, want %q", key, got, want)
				}
			}
			if got := r.Header.Get("Authorization"); got != "Token tok-123" {
				t.Errorf("Authorization = %q, want %q", got, "Token tok-123")
			}
			wantEnc := ""
			if gz {
				wantEnc = "gzip"
			}
			if got := r.Header.Get("Content-Encoding"); got != wantEnc {
				t.Errorf("Content-Encoding = %q, want %q", got, wantEnc)
			}
			if want := string(agent.LineProtocol(points)); r.Body != want {
				t.Errorf("body:\n%s\nwant:\n%s", r.Body, want)
			}
			if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "pmta-agent") {
				t.Errorf("User-Agent %q does not name pmta-agent", ua)
			}
		})
	}
}

// TestWriteInfluxDB18 checks the request shape InfluxDB 1.8's /api/v2/write
// expects: bucket "db/rp", a "user:password" token or none at all.
func TestWriteInfluxDB18(t *testing.T) {
	tests := []struct {
		name, bucket, token, wantAuth string
	}{
		{"db and rp with credentials", "telegraf/autogen", "writer:s3cret", "Token writer:s3cret"},
		{"db only, no auth", "telegraf", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, noContent())
			s := newSink(t, Config{URL: srv.URL + "/", Bucket: tt.bucket, Token: tt.token})
			if err := s.Write(context.Background(), testPoints(1)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			r := srv.got()[0]
			if r.Path != "/api/v2/write" {
				t.Errorf("path %q, want /api/v2/write", r.Path)
			}
			if got := r.Query.Get("bucket"); got != tt.bucket {
				t.Errorf("bucket = %q, want %q", got, tt.bucket)
			}
			if got := r.Header.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
			}
		})
	}
}

func TestWriteURLWithPathPrefix(t *testing.T) {
	srv := newServer(t, noContent())
	s := newSink(t, Config{URL: srv.URL + "/influx", Bucket: "b"})
	if err := s.Write(context.Background(), testPoints(1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := srv.got()[0].Path; got != "/influx/api/v2/write" {
		t.Errorf("path %q, want /influx/api/v2/write", got)
	}
}

func TestWriteChunksInOrder(t *testing.T) {
	srv := newServer(t, noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 3})
	points := testPoints(7)
	if err := s.Write(context.Background(), points); err != nil {
		t.Fatalf("Write: %v", err)
	}
	reqs := srv.got()
	wantChunks := [][]agent.Point{points[0:3], points[3:6], points[6:7]}
	if len(reqs) != len(wantChunks) {
		t.Fatalf("got %d requests, want %d", len(reqs), len(wantChunks))
	}
	for i, chunk := range wantChunks {
		if want := string(agent.LineProtocol(chunk)); reqs[i].Body != want {
			t.Errorf("request %d body:\n%s\nwant:\n%s", i, reqs[i].Body, want)
		}
	}
}

func TestWriteSkipsPointsWithoutFields(t *testing.T) {
	srv := newServer(t, noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
	empty := []agent.Point{{Measurement: "m", Time: time.Unix(1, 0)}, {Measurement: "m", Time: time.Unix(2, 0)}}
	points := append(empty, testPoints(1)...)
	if err := s.Write(context.Background(), points); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if reqs := srv.got(); len(reqs) != 1 || reqs[0].Body != string(agent.LineProtocol(points[2:])) {
		t.Errorf("requests %+v, want one with the last point only", reqs)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Errorf("Write(nil): %v", err)
	}
	if n := len(srv.got()); n != 1 {
		t.Errorf("an empty Write sent a request")
	}
}

func TestWriteStopsAtFailingChunk(t *testing.T) {
	srv := newServer(t, noContent(), answer(http.StatusServiceUnavailable, ""), noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
	err := s.Write(context.Background(), testPoints(6))
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Fatalf("kind %v (err %v), want retryable", kind, err)
	}
	var pw *PartialWriteError
	if !errors.As(err, &pw) {
		t.Fatalf("error %v does not carry a PartialWriteError", err)
	}
	if pw.Written != 2 || pw.Rejected != 0 || pw.Settled() != 2 {
		t.Errorf("progress %+v, want 2 written, 0 rejected", pw)
	}
	var settled interface{ Settled() int }
	if !errors.As(err, &settled) || settled.Settled() != 2 {
		t.Errorf("progress not found through the Settled interface")
	}
	if n := len(srv.got()); n != 2 {
		t.Errorf("sent %d requests, want 2 (stop at the failing chunk)", n)
	}
}

func TestWriteFirstChunkFailsWithoutProgress(t *testing.T) {
	srv := newServer(t, answer(http.StatusInternalServerError, ""))
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
	err := s.Write(context.Background(), testPoints(4))
	var pw *PartialWriteError
	if errors.As(err, &pw) {
		t.Errorf("nothing was written, yet the error carries progress %+v", pw)
	}
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Errorf("kind %v, want retryable", kind)
	}
}

func TestWritePermanentChunkDoesNotStop(t *testing.T) {
	bad := answer(http.StatusBadRequest, `{"code":"invalid","message":"unable to parse"}`, "Content-Type", "application/json")
	t.Run("rest accepted", func(t *testing.T) {
		srv := newServer(t, noContent(), bad, noContent())
		s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
		err := s.Write(context.Background(), testPoints(6))
		if kind, _ := agent.Classify(err); kind != agent.Permanent {
			t.Fatalf("kind %v (err %v), want permanent", kind, err)
		}
		var pw *PartialWriteError
		if !errors.As(err, &pw) || pw.Written != 4 || pw.Rejected != 2 || pw.Settled() != 6 {
			t.Errorf("progress %+v, want 4 written, 2 rejected", pw)
		}
		if n := len(srv.got()); n != 3 {
			t.Errorf("sent %d requests, want 3", n)
		}
	})
	t.Run("later chunk fails", func(t *testing.T) {
		srv := newServer(t, bad, answer(http.StatusBadGateway, ""))
		s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
		err := s.Write(context.Background(), testPoints(6))
		if kind, _ := agent.Classify(err); kind != agent.Retryable {
			t.Fatalf("kind %v (err %v), want retryable", kind, err)
		}
		var pw *PartialWriteError
		if !errors.As(err, &pw) || pw.Written != 0 || pw.Rejected != 2 || pw.Settled() != 2 {
			t.Errorf("progress %+v, want 0 written, 2 rejected", pw)
		}
		if n := len(srv.got()); n != 2 {
			t.Errorf("sent %d requests, want 2", n)
		}
	})
}

// TestNoLibraryRetries: every Write is exactly one request per chunk,
// whatever the answer; retrying is the delivery loop's job.
func TestNoLibraryRetries(t *testing.T) {
	for _, status := range []int{429, 500, 503, 504} {
		srv := newServer(t, answer(status, "", "Retry-After", "1"))
		s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
		for range 3 {
			if err := s.Write(context.Background(), testPoints(2)); err == nil {
				t.Fatalf("status %d: Write succeeded", status)
			}
		}
		if n := len(srv.got()); n != 3 {
			t.Errorf("status %d: %d requests for 3 writes, want 3", status, n)
		}
	}
}

func TestPrecision(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		prec     time.Duration
		query    string
		wantTime string
	}{
		{0, "ns", "1714564800123456789"},
		{time.Nanosecond, "ns", "1714564800123456789"},
		{time.Microsecond, "us", "1714564800123456"},
		{time.Millisecond, "ms", "1714564800123"},
		{time.Second, "s", "1714564800"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			srv := newServer(t, noContent())
			s := newSink(t, Config{URL: srv.URL, Bucket: "b", Precision: tt.prec})
			points := []agent.Point{
				agent.NewPoint("m", []agent.Tag{{Key: "t", Value: "a b"}}, []agent.Field{{Key: "v", Value: int64(1)}}, ts),
				agent.NewPoint("m", nil, []agent.Field{{Key: "v", Value: int64(2)}}, time.Time{}),
				agent.NewPoint("skipped", nil, nil, ts),
			}
			if err := s.Write(context.Background(), points); err != nil {
				t.Fatalf("Write: %v", err)
			}
			r := srv.got()[0]
			if got := r.Query.Get("precision"); got != tt.query {
				t.Errorf("precision = %q, want %q", got, tt.query)
			}
			want := `m,t=a\ b v=1i ` + tt.wantTime + "\nm v=2i\n"
			if r.Body != want {
				t.Errorf("body %q, want %q", r.Body, want)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	srv := newTLSServer(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := srv.Certificate()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	s := newSink(t, Config{URL: srv.URL, Bucket: "b", TLS: agent.TLSConfig{CAFile: caFile}})
	if err := s.Write(context.Background(), testPoints(1)); err != nil {
		t.Fatalf("Write with the server's CA: %v", err)
	}

	untrusted := newSink(t, Config{URL: srv.URL, Bucket: "b"})
	err := untrusted.Write(context.Background(), testPoints(1))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Write without the CA: %v, want an unknown-authority error", err)
	}
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Errorf("kind %v, want retryable: a certificate problem is fixed by the operator", kind)
	}
	if n := len(srv.got()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestTimeout(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answer only when the client gives up
	})
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", Timeout: 50 * time.Millisecond})
	err := s.Write(context.Background(), testPoints(1))
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Fatalf("kind %v (err %v), want retryable", kind, err)
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{URL: "ftp://user:hunter2@host", Precision: time.Minute, BatchSize: -1, Timeout: -time.Second}, discardLogger())
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"url", "bucket", "precision", "batch_size", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the URL's password", err)
	}
	if _, err := New(Config{Bucket: "b"}, discardLogger()); err == nil || !strings.Contains(err.Error(), "url is required") {
		t.Errorf("missing URL: %v", err)
	}
	if _, err := New(Config{URL: "http://h", Bucket: "b"}, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
	if _, err := New(Config{URL: "http://h", Bucket: "b", TLS: agent.TLSConfig{CAFile: filepath.Join(t.TempDir(), "none.pem")}}, discardLogger()); err == nil {
		t.Error("New accepted a missing CA file")
	}
	s, err := New(Config{URL: "http://h", Bucket: "b"}, discardLogger())
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if s.cfg.BatchSize != DefaultBatchSize || s.cfg.Timeout != DefaultTimeout || s.cfg.Precision != time.Nanosecond {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	if s.Name() != "influx" {
		t.Errorf("Name() = %q", s.Name())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestPing(t *testing.T) {
	srv := newServer(t, noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if r := srv.got()[0]; r.Method != http.MethodGet || r.Path != "/ping" {
		t.Errorf("Ping sent %s %s, want GET /ping", r.Method, r.Path)
	}

	down := newServer(t)
	url := down.URL
	down.Close()
	s = newSink(t, Config{URL: url, Bucket: "b"})
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping of a closed server succeeded")
	}
}
