package influx

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

const jsonType = "application/json; charset=utf-8"

// TestClassify drives classify through real HTTP answers, shaped as InfluxDB
// 2.x, 1.8 and 3.x send them, and through real transport failures.
func TestClassify(t *testing.T) {
	httpDate := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		ok      bool
		kind    agent.ErrorKind
		minWait time.Duration // RetryAfter bounds
		maxWait time.Duration
		says    []string // substrings of the error text
		// rejected is SinkError.Rejected: the "dropped=N" of a partial
		// write, at most the 3 points written.
		rejected int
	}{
		{name: "204 accepted", answer: noContent(), ok: true},
		{name: "200 accepted", answer: answer(http.StatusOK, ""), ok: true},
		{name: "400 v2 parse error",
			answer: answer(400, `{"code":"invalid","message":"unable to parse 'm v=': missing field value"}`, "Content-Type", jsonType),
			kind:   agent.Permanent, says: []string{"points rejected", "HTTP 400", "unable to parse"}},
		{name: "400 v1.8 partial write field type conflict",
			answer: answer(400, `{"error":"partial write: field type conflict: input field \"rcp\" on measurement \"pmta_queue\" is type float, already exists as type integer dropped=1"}`,
				"Content-Type", "application/json", "X-Influxdb-Error", `partial write: field type conflict: input field "rcp" on measurement "pmta_queue" is type float, already exists as type integer dropped=1`),
			kind: agent.Permanent, says: []string{"field type conflict"}, rejected: 1},
		{name: "400 v1.8 points beyond retention policy",
			answer: answer(400, `{"error":"partial write: points beyond retention policy dropped=3"}`,
				"Content-Type", "application/json", "X-Influxdb-Error", "partial write: points beyond retention policy dropped=3"),
			kind: agent.Permanent, says: []string{"points beyond retention policy"}, rejected: 3},
		{name: "400 v1.8 partial write of unparsable lines says dropped=0",
			answer: answer(400, `{"error":"partial write: unable to parse 'm v=': missing field value dropped=0"}`,
				"Content-Type", "application/json", "X-Influxdb-Error", "partial write: unable to parse 'm v=': missing field value dropped=0"),
			kind: agent.Permanent, says: []string{"unable to parse"}, rejected: 0},
		{name: "400 v1.8 dropped beyond the request is capped",
			answer: answer(400, `{"error":"partial write: points beyond retention policy dropped=9"}`,
				"Content-Type", "application/json", "X-Influxdb-Error", "partial write: points beyond retention policy dropped=9"),
			kind: agent.Permanent, rejected: 3},
		{name: "400 v1.8 count beyond the shortened message",
			answer: answer(400, `{"error":"partial write: field type conflict: input field \"rcp\" on measurement \"`+strings.Repeat("q", 350)+`\" is type float, already exists as type integer dropped=2"}`,
				"Content-Type", "application/json", "X-Influxdb-Error", `partial write: field type conflict: input field "rcp" on measurement "`+strings.Repeat("q", 350)+`" is type float, already exists as type integer dropped=2`),
			kind: agent.Permanent, says: []string{"field type conflict", "…"}, rejected: 2},
		{name: "400 v3 error shape",
			answer: answer(400, `{"error":"parsing failed for write_lp endpoint","data":{"original_line":"m v="}}`, "Content-Type", "application/json"),
			kind:   agent.Permanent, says: []string{"parsing failed for write_lp endpoint"}},
		{name: "422 unprocessable",
			answer: answer(422, `{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}`, "Content-Type", jsonType),
			kind:   agent.Permanent, says: []string{"HTTP 422", "beyond retention policy"}, rejected: 1},
		{name: "401 v2",
			answer: answer(401, `{"code":"unauthorized","message":"unauthorized access"}`, "Content-Type", jsonType),
			kind:   agent.Retryable, says: []string{"unauthorized: check the token", "HTTP 401"}},
		{name: "401 v1.8 without message",
			answer: answer(401, `{"error":"authorization failed"}`, "Content-Type", "application/json", "WWW-Authenticate", `Basic realm="InfluxDB"`),
			kind:   agent.Retryable, says: []string{"unauthorized: check the token", "authorization failed"}},
		{name: "403 v1.8",
			answer: answer(403, `{"error":"\"bob\" user is not authorized to write to database \"pmta\""}`,
				"Content-Type", "application/json", "X-Influxdb-Error", `"bob" user is not authorized to write to database "pmta"`),
			kind: agent.Retryable, says: []string{"unauthorized: check the token", "not authorized to write"}},
		{name: "404 bucket not found",
			answer: answer(404, `{"code":"not found","message":"bucket \"pmta\" not found"}`, "Content-Type", jsonType),
			kind:   agent.Retryable, says: []string{"bucket not found", `bucket "pmta" not found`}},
		{name: "404 v1.8 database not found",
			answer: answer(404, `{"error":"database not found: \"pmta\""}`, "Content-Type", "application/json", "X-Influxdb-Error", `database not found: "pmta"`),
			kind:   agent.Retryable, says: []string{"bucket not found", "database must exist", `database not found: "pmta"`}},
		{name: "413 too large",
			answer: answer(413, `{"code":"request too large","message":"unable to read data: points batch is too large"}`, "Content-Type", jsonType),
			kind:   agent.TooLarge, says: []string{"too large", "HTTP 413"}},
		{name: "413 from a proxy in HTML",
			answer: answer(413, "<html><body><h1>413 Request Entity Too Large</h1></body></html>", "Content-Type", "text/html"),
			kind:   agent.TooLarge, says: []string{"413 Request Entity Too Large"}},
		{name: "429 retry-after seconds",
			answer: answer(429, "", "Retry-After", "30"),
			kind:   agent.Throttled, minWait: 30 * time.Second, maxWait: 30 * time.Second, says: []string{"throttled", "HTTP 429"}},
		{name: "429 retry-after HTTP date",
			answer: answer(429, "", "Retry-After", httpDate),
			kind:   agent.Throttled, minWait: time.Minute, maxWait: 2*time.Minute + time.Second},
		{name: "429 without retry-after",
			answer: answer(429, `{"code":"too many requests","message":"org exceeded write limit"}`, "Content-Type", jsonType),
			kind:   agent.Throttled, says: []string{"org exceeded write limit"}},
		{name: "503 with retry-after",
			answer: answer(503, "", "Retry-After", "7"),
			kind:   agent.Throttled, minWait: 7 * time.Second, maxWait: 7 * time.Second, says: []string{"unavailable"}},
		{name: "503 without retry-after",
			answer: answer(503, "down for maintenance"),
			kind:   agent.Retryable, says: []string{"HTTP 503", "down for maintenance"}},
		{name: "500", answer: answer(500, `{"code":"internal error","message":"engine: cache-max-memory-size exceeded"}`, "Content-Type", jsonType),
			kind: agent.Retryable, says: []string{"HTTP 500", "cache-max-memory-size exceeded"}},
		{name: "502 plain", answer: answer(502, ""), kind: agent.Retryable, says: []string{"HTTP 502 Bad Gateway"}},
		{name: "405 other 4xx", answer: answer(405, "method not allowed"), kind: agent.Retryable, says: []string{"HTTP 405"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.answer)
			s := newSink(t, Config{URL: srv.URL, Bucket: "pmta"})
			err := s.Write(context.Background(), testPoints(3))
			if tt.ok {
				if err != nil {
					t.Fatalf("Write: %v, want nil", err)
				}
				return
			}
			var se *agent.SinkError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *agent.SinkError", err, err)
			}
			if se.Kind != tt.kind {
				t.Errorf("kind %v, want %v (err %v)", se.Kind, tt.kind, err)
			}
			if se.Rejected != tt.rejected {
				t.Errorf("Rejected = %d, want %d", se.Rejected, tt.rejected)
			}
			if n := agent.Settled(err); n != 0 {
				t.Errorf("Settled = %d for a one-request write that failed", n)
			}
			if se.RetryAfter < tt.minWait || se.RetryAfter > tt.maxWait {
				t.Errorf("RetryAfter %v, want within [%v, %v]", se.RetryAfter, tt.minWait, tt.maxWait)
			}
			for _, want := range tt.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestClassifyTransport(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		s := newSink(t, Config{URL: "http://" + addr, Bucket: "b"})
		err = s.Write(context.Background(), testPoints(1))
		if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable {
			t.Fatalf("err %v kind %v, want retryable", err, kind)
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("error %q does not say the connection was refused", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-r.Context().Done()
		})
		s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
		err := s.Write(ctx, testPoints(1))
		if kind, _ := agent.Classify(err); kind != agent.Retryable {
			t.Errorf("kind %v, want retryable", kind)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
		if strings.Contains(err.Error(), srv.URL) {
			t.Errorf("error %q repeats transport detail for a cancellation", err)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := s.Write(ctx, testPoints(1))
		if kind, _ := agent.Classify(err); kind != agent.Retryable {
			t.Errorf("kind %v, want retryable", kind)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		srv := newServer(t, noContent())
		s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Write(ctx, testPoints(1))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
		if n := len(srv.got()); n != 0 {
			t.Errorf("cancelled Write reached the server %d times", n)
		}
	})
}

// TestParseDropped reads InfluxDB's count of refused points.
func TestParseDropped(t *testing.T) {
	tests := []struct {
		text string
		n    int
		ok   bool
	}{
		{"partial write: field type conflict: input field \"rcp\" is type float, already exists as type integer dropped=1", 1, true},
		{"partial write: points beyond retention policy dropped=3", 3, true},
		{`{"error":"partial write: points beyond retention policy dropped=12"}`, 12, true},
		{"partial write: unable to parse 'x': bad dropped=0", 0, true},
		{"failure writing points to database: partial write: points beyond retention policy dropped=1", 1, true},
		{"partial write: a dropped=2 in the reason dropped=5", 5, true},
		{"points_dropped=7", 0, false},
		{"dropped=", 0, false},
		{"dropped=x", 0, false},
		{"unable to parse 'm v=': missing field value", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		n, ok := parseDropped(tt.text)
		if n != tt.n || ok != tt.ok {
			t.Errorf("parseDropped(%q) = %d, %v; want %d, %v", tt.text, n, ok, tt.n, tt.ok)
		}
	}
}

func TestClassifyDirect(t *testing.T) {
	if err := classify(nil); err != nil {
		t.Errorf("classify(nil) = %v", err)
	}
	other := errors.New("something odd")
	err := classify(other)
	var se *agent.SinkError
	if !errors.As(err, &se) || se.Kind != agent.Retryable || !errors.Is(err, other) {
		t.Errorf("classify(unknown) = %v, want retryable wrapping it", err)
	}
}

func TestServerMessageBounded(t *testing.T) {
	long := strings.Repeat("unable to parse 'pmta_queue,domain=é x': bad\n", 50)
	srv := newServer(t, answer(400, long, "Content-Type", "text/plain"))
	s := newSink(t, Config{URL: srv.URL, Bucket: "b"})
	err := s.Write(context.Background(), testPoints(1))
	if err == nil {
		t.Fatal("Write succeeded")
	}
	if n := len(err.Error()); n > maxMessage+200 {
		t.Errorf("error is %d bytes long; server text should be cut near %d", n, maxMessage)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error holds a line break: %q", err)
	}
	if !strings.Contains(err.Error(), "…") {
		t.Errorf("error %q does not show it was cut", err)
	}
}
