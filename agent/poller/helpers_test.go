package poller

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// t0 is the poll time of the first round in every test.
var t0 = time.Date(2024, 1, 15, 15, 25, 0, 0, time.UTC)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeClock is the injectable clock: fixed until a test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// allEndpoints returns cfg with every endpoint switched on.
func allEndpoints(cfg Config) Config {
	cfg.Endpoints = Endpoints{Status: true, Queues: true, Domains: true, VMTAs: true}
	return cfg
}

// newTestPoller builds a poller on a fake clock at t0.
func newTestPoller(t *testing.T, cfg Config, log *slog.Logger) (*Poller, *fakeClock) {
	t.Helper()
	if log == nil {
		log = discardLogger()
	}
	p, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &fakeClock{t: t0}
	p.now = clock.now
	t.Cleanup(func() { _ = p.Close() })
	return p, clock
}

// recorder keeps the requests a test server received.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) add(req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
}

func (r *recorder) all() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// docHandler serves the recorded documents of dir: a path with an extension
// (seed: /queue.csv) names its file; a pmta path (/queues?format=xml) is
// served from queues.xml.
func docHandler(t *testing.T, dir string, rec *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec != nil {
			rec.add(r)
		}
		name := path.Base(r.URL.Path)
		if path.Ext(name) == "" {
			name += "." + r.URL.Query().Get("format")
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("test server: no document for %s: %v", r.URL, err)
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
}

// serveDir starts a server for docHandler.
func serveDir(t *testing.T, dir string, rec *recorder) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(docHandler(t, dir, rec))
	t.Cleanup(srv.Close)
	return srv
}
