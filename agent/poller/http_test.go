package poller

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"

	"github.com/pmta-agent/pmta-agent/agent"
)

const testKey = "k3y_0123456789abcdefghijklmnopqrstuv"

func jsonDocs() string { return filepath.Join("testdata", "pmta-json") }

// onlyUpZero checks that the batch is the failure batch: one pmta_status point
// with up=0 and nothing else.
func onlyUpZero(t *testing.T, b agent.Batch) {
	t.Helper()
	if len(b.Points) != 1 || b.Points[0].Measurement != "pmta_status" {
		t.Fatalf("points = %+v, want one pmta_status", b.Points)
	}
	f := b.Points[0].Fields
	if len(f) != 1 || f[0].Key != "up" || f[0].Value != int64(0) {
		t.Errorf("fields = %+v, want just up=0", f)
	}
}

func upValue(t *testing.T, b agent.Batch) any {
	t.Helper()
	if len(b.Points) == 0 || b.Points[0].Measurement != "pmta_status" {
		t.Fatalf("first point is not pmta_status: %+v", b.Points)
	}
	v, _ := b.Points[0].FieldValue("up")
	return v
}

func TestRequestsCarryKeyAndQuery(t *testing.T) {
	rec := &recorder{}
	srv := serveDir(t, jsonDocs(), rec)
	p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL + "/", APIKey: testKey, MaxItems: 500}), nil)
	if _, err := p.Gather(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := rec.all()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("X-API-Key"); got != testKey {
			t.Errorf("%s: X-API-Key = %q", r.URL, got)
		}
		if got := r.URL.Query().Get("format"); got != "json" {
			t.Errorf("%s: format = %q", r.URL, got)
		}
		wantMax := "500"
		if r.URL.Path == "/status" {
			wantMax = ""
		}
		if got := r.URL.Query().Get("maxitems"); got != wantMax {
			t.Errorf("%s: maxitems = %q, want %q", r.URL, got, wantMax)
		}
		if !strings.Contains(r.Header.Get("Accept"), "json") {
			t.Errorf("%s: Accept = %q", r.URL, r.Header.Get("Accept"))
		}
	}
}

func TestNoKeyWhenUnset(t *testing.T) {
	rec := &recorder{}
	srv := serveDir(t, jsonDocs(), rec)
	p, _ := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}}, nil)
	if _, err := p.Gather(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.all() {
		if _, ok := r.Header["X-Api-Key"]; ok {
			t.Errorf("%s carries an X-API-Key header although none is configured", r.URL)
		}
	}
}

// failingServer answers every request with h.
func failingServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestEndpointFailures(t *testing.T) {
	half, err := os.ReadFile(filepath.Join(jsonDocs(), "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	half = half[:len(half)/2]
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"403", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("<html><body>access forbidden</body></html>"))
		}, "403 Forbidden: this host is not in PowerMTA's http-access list and no valid X-API-Key was sent"},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "HTTP 500 Internal Server Error"},
		{"html login page with 200", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Login</title></head><body><form></form></body></html>"))
		}, "HTML page"},
		{"wrong envelope", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"data":"","status":"error","message":"invalid command"}`))
		}, `PowerMTA replied status "error": invalid command`},
		{"truncated JSON", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(half)
		}, "truncated"},
		{"connection cut mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			_, _ = w.Write(half)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
				}
			}
		}, "unexpected EOF"},
		{"empty body", func(w http.ResponseWriter, r *http.Request) {}, "empty response body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := failingServer(t, tc.handler)
			p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL}), nil)
			b, err := p.Gather(context.Background())
			if err == nil {
				t.Fatal("Gather returned no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			for _, ep := range []string{"api status:", "api queues:", "api domains:", "api vmtas:"} {
				if !strings.Contains(err.Error(), ep) {
					t.Errorf("error does not name endpoint %q: %v", ep, err)
				}
			}
			onlyUpZero(t, b)
			if got := statValue(t, p, "errors"); got != 4 {
				t.Errorf("errors stat = %d, want 4", got)
			}
			if got := statValue(t, p, "last_success_unix"); got != 0 {
				t.Errorf("last_success_unix = %d, want 0", got)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	p, _ := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}, Timeout: 150 * time.Millisecond}, nil)
	b, err := p.Gather(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error = %v, want a timeout", err)
	}
	onlyUpZero(t, b)
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	p, _ := newTestPoller(t, allEndpoints(Config{URL: "http://" + addr}), nil)
	b, err := p.Gather(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error = %v, want connection refused", err)
	}
	onlyUpZero(t, b)
}

func TestBodyCap(t *testing.T) {
	srv := serveDir(t, jsonDocs(), nil)
	p, _ := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}}, nil)
	p.maxBody = 100
	_, err := p.Gather(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Fatalf("error = %v, want the size cap", err)
	}
}

// TestPartialFailure: /status answers, /queues does not. The status fields
// are kept with up=0, and the other listings still come through.
func TestPartialFailure(t *testing.T) {
	docs := docHandler(t, jsonDocs(), nil)
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/queues" {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		docs.ServeHTTP(w, r)
	})
	p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL}), nil)
	b, err := p.Gather(context.Background())
	if err == nil || !strings.Contains(err.Error(), "api queues: HTTP 503") {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), "api status") {
		t.Errorf("status reported as failing: %v", err)
	}
	if up := upValue(t, b); up != int64(0) {
		t.Errorf("up = %v, want 0", up)
	}
	if v, ok := b.Points[0].FieldValue("queue_rcp"); !ok || v != int64(84312) {
		t.Errorf("queue_rcp = %v %v, want 84312", v, ok)
	}
	count := map[string]int{}
	for _, pt := range b.Points {
		count[pt.Measurement]++
	}
	if count["pmta_queue"] != 0 || count["pmta_domain"] != 3 || count["pmta_vmta"] != 3 {
		t.Errorf("points per measurement = %v", count)
	}
	if got := statValue(t, p, "errors"); got != 1 {
		t.Errorf("errors stat = %d, want 1", got)
	}
}

func writeCertPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webmon.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTTPSSelfSigned(t *testing.T) {
	srv := httptest.NewTLSServer(docHandler(t, jsonDocs(), nil))
	t.Cleanup(srv.Close)

	t.Run("untrusted", func(t *testing.T) {
		p, _ := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}}, nil)
		b, err := p.Gather(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error = %v, want a certificate error", err)
		}
		onlyUpZero(t, b)
	})
	t.Run("trusted through ca_file", func(t *testing.T) {
		cfg := allEndpoints(Config{URL: srv.URL})
		cfg.TLS = transport.TLSConfig{CAFile: writeCertPEM(t, srv)}
		p, _ := newTestPoller(t, cfg, nil)
		b, err := p.Gather(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if up := upValue(t, b); up != int64(1) {
			t.Errorf("up = %v", up)
		}
	})
	t.Run("skip verify", func(t *testing.T) {
		cfg := Config{URL: srv.URL, Endpoints: Endpoints{Status: true}, TLS: transport.TLSConfig{InsecureSkipVerify: true}}
		p, _ := newTestPoller(t, cfg, nil)
		if _, err := p.Gather(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRedirectDropsKeyOffOrigin(t *testing.T) {
	rec := &recorder{}
	target := serveDir(t, jsonDocs(), rec)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, host string
		wantKey    bool
	}{
		// 127.0.0.1 on another port: whatever listens there is not
		// necessarily PowerMTA, so the key stays behind.
		{"same host, other port", "127.0.0.1", false},
		// localhost is another host name: the key stays behind.
		{"other host", "localhost", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.reqs = nil
			rec.mu.Unlock()
			front := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://"+net.JoinHostPort(tc.host, port)+r.URL.RequestURI(), http.StatusMovedPermanently)
			})
			p, _ := newTestPoller(t, allEndpoints(Config{URL: front.URL, APIKey: testKey}), nil)
			b, err := p.Gather(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if up := upValue(t, b); up != int64(1) {
				t.Errorf("up = %v", up)
			}
			reqs := rec.all()
			if len(reqs) != 4 {
				t.Fatalf("target saw %d requests, want 4", len(reqs))
			}
			for _, r := range reqs {
				if got := r.Header.Get("X-API-Key") == testKey; got != tc.wantKey {
					t.Errorf("%s: key sent = %v, want %v", r.URL, got, tc.wantKey)
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Endpoints: Endpoints{Status: true}}, "url: must be set"},
		{"bad scheme", Config{URL: "ftp://x", Endpoints: Endpoints{Status: true}}, "must start with http:// or https://"},
		{"no host", Config{URL: "http://", Endpoints: Endpoints{Status: true}}, "has no host"},
		{"query", Config{URL: "http://x/?a=1", Endpoints: Endpoints{Status: true}}, "must not carry a query"},
		{"dialect", Config{URL: "http://x", Dialect: "snmp", Endpoints: Endpoints{Status: true}}, "dialect: is \"snmp\", want one of pmta, seed"},
		{"format", Config{URL: "http://x", Format: "csv", Endpoints: Endpoints{Status: true}}, "format: is \"csv\", want one of json, xml"},
		{"seed xml", Config{URL: "http://x", Dialect: "seed", Format: "xml", Endpoints: Endpoints{Status: true}}, "xml exists only in the pmta dialect"},
		{"negative", Config{URL: "http://x", Interval: -time.Second, Timeout: -1, Jitter: -1, MaxItems: -1, Endpoints: Endpoints{Status: true}}, "interval"},
		{"no endpoint", Config{URL: "http://x"}, "all endpoints are off"},
		{"ca file", Config{URL: "https://x", Endpoints: Endpoints{Status: true}, TLS: transport.TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "tls.ca_file: cannot be read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, discardLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{URL: "http://x", Endpoints: Endpoints{Status: true}}, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
	p, err := New(Config{URL: "https://pmta.example:8080/pmta", Endpoints: Endpoints{Status: true}}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Interval != DefaultConfig().Interval || p.cfg.Timeout != DefaultConfig().Timeout || p.cfg.Dialect != DialectPMTA || p.cfg.Format != FormatJSON {
		t.Errorf("defaults not applied: %+v", p.cfg)
	}
	if got := p.endpoints[0].url; got != "https://pmta.example:8080/pmta/status?format=json" {
		t.Errorf("status url = %q", got)
	}
}
