package poller

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// bothProtocols serves plain HTTP and HTTPS on one port, as PowerMTA 5's web
// monitor does before it redirects the one to the other: a connection that
// opens with a TLS handshake record (0x16) is TLS.
type bothProtocols struct {
	net.Listener
	tls *tls.Config
}

func (l bothProtocols) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if err == nil && first[0] == 0x16 {
		return tls.Server(pc, l.tls), nil
	}
	return pc, nil
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveBothProtocols starts h on one port for http:// and https://.
func serveBothProtocols(t *testing.T, h http.Handler) (port string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS() // only to have httptest make a certificate
	cfg := srv.TLS.Clone()
	srv.Close()
	srv = httptest.NewUnstartedServer(h)
	srv.Listener = bothProtocols{Listener: srv.Listener, tls: cfg}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestRedirectKeyOnlyToOrigin: the key follows a redirect only to the
// configured scheme, host and port, or from http:// to https:// on the same
// host and port (PowerMTA 5's http-redirect-to-https).
func TestRedirectKeyOnlyToOrigin(t *testing.T) {
	rec := &recorder{}
	docs := docHandler(t, jsonDocs(), nil)
	// redirect says where to send a request, "" to answer it.
	var redirect atomic.Pointer[func(r *http.Request) string]
	port := serveBothProtocols(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := (*redirect.Load())(r); to != "" {
			http.Redirect(w, r, to, http.StatusMovedPermanently)
			return
		}
		rec.add(r)
		docs.ServeHTTP(w, r)
	}))
	origin := "127.0.0.1:" + port
	cases := []struct {
		name     string
		base     string
		redirect func(r *http.Request) string
		wantKey  bool
	}{
		{"http to https, same host and port", "http://" + origin, func(r *http.Request) string {
			if r.TLS == nil {
				return "https://" + origin + r.URL.RequestURI()
			}
			return ""
		}, true},
		{"same origin, other path", "http://" + origin, func(r *http.Request) string {
			if r.URL.Query().Get("moved") == "" {
				return "http://" + origin + r.URL.Path + "?" + r.URL.RawQuery + "&moved=1"
			}
			return ""
		}, true},
		{"https to http, same host and port", "https://" + origin, func(r *http.Request) string {
			if r.TLS != nil {
				return "http://" + origin + r.URL.RequestURI()
			}
			return ""
		}, false},
		{"http to https, other host name", "http://" + origin, func(r *http.Request) string {
			if r.TLS == nil {
				return "https://localhost:" + port + r.URL.RequestURI()
			}
			return ""
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.reqs = nil
			rec.mu.Unlock()
			redirect.Store(&tc.redirect)
			cfg := allEndpoints(Config{URL: tc.base, APIKey: testKey, TLS: transport.TLSConfig{InsecureSkipVerify: true}})
			p, _ := newTestPoller(t, cfg, nil)
			b, err := p.Gather(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if up := upValue(t, b); up != int64(1) {
				t.Errorf("up = %v", up)
			}
			reqs := rec.all()
			if len(reqs) != 4 {
				t.Fatalf("%d requests answered, want 4", len(reqs))
			}
			for _, r := range reqs {
				if got := r.Header.Get(apiKeyHeader) == testKey; got != tc.wantKey {
					t.Errorf("%s: key sent = %v, want %v", r.URL, got, tc.wantKey)
				}
			}
		})
	}
}

func TestKeyMayFollow(t *testing.T) {
	cases := []struct {
		from, to string
		want     bool
	}{
		{"http://pmta:8080/status", "http://pmta:8080/other", true},
		{"http://pmta:8080", "https://pmta:8080/status", true},
		{"http://PMTA:8080", "https://pmta:8080", true},
		{"http://pmta", "http://pmta:80/status", true},
		{"https://pmta:443", "https://pmta/status", true},
		{"http://[::1]:8080", "https://[::1]:8080/", true},
		{"http://pmta", "https://pmta/status", false}, // port 80 → 443: another listener
		{"http://pmta:8080", "http://pmta:8081/status", false},
		{"https://pmta:8080", "http://pmta:8080/status", false},
		{"http://pmta:8080", "http://evil:8080/status", false},
		{"http://pmta:8080", "http://pmta.evil:8080/status", false},
	}
	for _, tc := range cases {
		from, _ := url.Parse(tc.from)
		to, _ := url.Parse(tc.to)
		if got := keyMayFollow(from, to); got != tc.want {
			t.Errorf("keyMayFollow(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}
