package influx

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// request is what the server saw of one write.
type request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string // decompressed when gzipped
}

// server is an httptest server that records every request and answers with
// the handler for that request's position (the last one repeats).
type server struct {
	*httptest.Server
	t        *testing.T
	mu       sync.Mutex
	requests []request
	answers  []http.HandlerFunc
}

func newServer(t *testing.T, answers ...http.HandlerFunc) *server {
	t.Helper()
	s := &server{t: t, answers: answers}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// newTLSServer is newServer over https with a self-signed certificate.
func newTLSServer(t *testing.T, answers ...http.HandlerFunc) *server {
	t.Helper()
	s := &server{t: t, answers: answers}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Errorf("read request body: %v", err)
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			s.t.Errorf("gzip body: %v", err)
		} else if body, err = io.ReadAll(zr); err != nil {
			s.t.Errorf("gunzip body: %v", err)
		}
	}
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(body),
	})
	s.mu.Unlock()
	if len(s.answers) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.answers[min(n, len(s.answers)-1)](w, r)
}

func (s *server) got() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

// answer returns a handler that replies with status, headers and body.
func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func noContent() http.HandlerFunc { return answer(http.StatusNoContent, "") }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, discardLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testPoints returns n distinct points one second apart.
func testPoints(n int) []agent.Point {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	points := make([]agent.Point, n)
	for i := range points {
		points[i] = agent.NewPoint("pmta_queue",
			[]agent.Tag{{Key: "server", Value: "mx 1"}, {Key: "domain", Value: "gmail.com"}},
			[]agent.Field{{Key: "rcp", Value: int64(i)}, {Key: "kb", Value: 1.5}},
			t0.Add(time.Duration(i)*time.Second))
	}
	return points
}
