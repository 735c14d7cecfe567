package influx

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"

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

// TestWriteOneRequest: a Write is one request, in order; how many points
// one Write gets is the delivery loop's to decide.
func TestWriteOneRequest(t *testing.T) {
	srv := newServer(t, noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 3})
	points := testPoints(7)
	if err := s.Write(context.Background(), points); err != nil {
		t.Fatalf("Write: %v", err)
	}
	reqs := srv.got()
	if len(reqs) != 1 || reqs[0].Body != string(agent.LineProtocol(points)) {
		t.Fatalf("got %d requests (%q), want the 7 points in one", len(reqs), reqs)
	}
}

// TestWriteRefusesUnwritablePoint: a point line protocol cannot carry is
// neither sent nor counted as written. The points before it go out; Write
// then refuses it for good, with the progress of what was sent, so that the
// delivery loop isolates and dead-letters it.
func TestWriteRefusesUnwritablePoint(t *testing.T) {
	noField := agent.Point{Measurement: "pmta_queue", Time: time.Unix(1, 0)}
	noMeasurement := agent.NewPoint("", nil, []agent.Field{{Key: "v", Value: int64(1)}}, time.Unix(1, 0))
	tooLate := agent.NewPoint("m", nil, []agent.Field{{Key: "v", Value: int64(1)}}, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	onlyNaN := agent.NewPoint("m", nil, []agent.Field{{Key: "v", Value: math.NaN()}}, time.Unix(1, 0))
	with := func(at int, bad agent.Point, n int) []agent.Point {
		pts := testPoints(n)
		return slices.Insert(pts, at, bad)
	}
	tests := []struct {
		name      string
		points    []agent.Point
		batchSize int
		sent      [][2]int // the points of each request, as [from, to)
		settled   int
		says      string
	}{
		{"first point, no field", with(0, noField, 3), 10, nil, 0, "no field"},
		{"middle of a chunk", with(2, noMeasurement, 3), 10, [][2]int{{0, 2}}, 2, "no measurement"},
		{"after three", with(3, tooLate, 3), 2, [][2]int{{0, 3}}, 3, "outside what a nanosecond timestamp can hold"},
		{"last point, only NaN", with(3, onlyNaN, 3), 10, [][2]int{{0, 3}}, 3, "no field"},
		{"alone", []agent.Point{noField}, 10, nil, 0, "no field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, noContent())
			s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: tt.batchSize})
			err := s.Write(context.Background(), tt.points)
			var se *agent.SinkError
			if !errors.As(err, &se) || se.Kind != agent.Permanent {
				t.Fatalf("Write: %v, want a permanent *agent.SinkError", err)
			}
			if se.Rejected != 1 {
				t.Errorf("Rejected = %d, want 1", se.Rejected)
			}
			if got := agent.Settled(err); got != tt.settled {
				t.Errorf("Settled = %d, want %d", got, tt.settled)
			}
			for _, want := range []string{"cannot be written as line protocol", tt.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			reqs := srv.got()
			if len(reqs) != len(tt.sent) {
				t.Fatalf("sent %d requests, want %d", len(reqs), len(tt.sent))
			}
			for i, r := range tt.sent {
				if want := string(agent.LineProtocol(tt.points[r[0]:r[1]])); reqs[i].Body != want {
					t.Errorf("request %d body:\n%s\nwant:\n%s", i, reqs[i].Body, want)
				}
			}
		})
	}
	t.Run("empty write sends nothing", func(t *testing.T) {
		srv := newServer(t, noContent())
		s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
		if err := s.Write(context.Background(), nil); err != nil {
			t.Errorf("Write(nil): %v", err)
		}
		if n := len(srv.got()); n != 0 {
			t.Errorf("an empty Write sent %d requests", n)
		}
	})
}

func TestWriteFailsWithoutProgress(t *testing.T) {
	srv := newServer(t, answer(http.StatusInternalServerError, ""))
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
	err := s.Write(context.Background(), testPoints(4))
	var pw *agent.PartialWriteError
	if errors.As(err, &pw) {
		t.Errorf("nothing was written, yet the error carries progress %+v", pw)
	}
	if kind, _ := agent.Classify(err); kind != agent.Retryable {
		t.Errorf("kind %v, want retryable", kind)
	}
}

// TestWriteRefusedForGood: a request refused for good claims no progress.
// InfluxDB 1.8 stores all but the bad lines of it, and only the delivery
// loop, writing halves again, can find which points to dead-letter.
func TestWriteRefusedForGood(t *testing.T) {
	bad := answer(http.StatusBadRequest, `{"code":"invalid","message":"unable to parse"}`, "Content-Type", "application/json")
	srv := newServer(t, bad, noContent())
	s := newSink(t, Config{URL: srv.URL, Bucket: "b", BatchSize: 2})
	err := s.Write(context.Background(), testPoints(6))
	if kind, _ := agent.Classify(err); kind != agent.Permanent {
		t.Fatalf("kind %v (err %v), want permanent", kind, err)
	}
	if n := agent.Settled(err); n != 0 {
		t.Errorf("Settled = %d, want 0", n)
	}
	if n := len(srv.got()); n != 1 {
		t.Errorf("sent %d requests, want 1", n)
	}
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

	s := newSink(t, Config{URL: srv.URL, Bucket: "b", TLS: transport.TLSConfig{CAFile: caFile}})
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
	if _, err := New(Config{Bucket: "b"}, discardLogger()); err == nil || !strings.Contains(err.Error(), "url: must be set") {
		t.Errorf("missing URL: %v", err)
	}
	if _, err := New(Config{URL: "http://h", Bucket: "b"}, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
	if _, err := New(Config{URL: "http://h", Bucket: "b", TLS: transport.TLSConfig{CAFile: filepath.Join(t.TempDir(), "none.pem")}}, discardLogger()); err == nil {
		t.Error("New accepted a missing CA file")
	}
	s, err := New(Config{URL: "http://h", Bucket: "b"}, discardLogger())
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if s.cfg.BatchSize != agent.DefaultBatchSize || s.cfg.Timeout != DefaultConfig().Timeout || s.cfg.Precision != time.Nanosecond {
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
