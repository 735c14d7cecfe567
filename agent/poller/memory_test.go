package poller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// endless is a reply that never ends on its own: head, then row after row
// (joined by sep) until size bytes are out or the client hangs up. It is
// generated as it is written, never held whole.
type endless struct {
	head, row, sep string
	size           int64
	contentLength  bool // declare size up front instead of chunking
}

func (e endless) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if e.contentLength {
		w.Header().Set("Content-Length", strconv.FormatInt(e.size, 10))
	}
	unit := e.row + e.sep
	chunk := []byte(strings.Repeat(unit, (64<<10)/len(unit)+1))
	n, err := w.Write([]byte(e.head))
	for total := int64(n); err == nil && total < e.size; total += int64(n) {
		n, err = w.Write(chunk[:min(int64(len(chunk)), e.size-total)])
	}
}

// serveEndless serves one endless reply per path (its last element).
func serveEndless(t *testing.T, replies map[string]endless) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, ok := replies[path.Base(r.URL.Path)]
		if !ok {
			t.Errorf("no reply for %s", r.URL)
			http.NotFound(w, r)
			return
		}
		e.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// heapPeak samples the bytes of heap objects (live or not yet collected)
// until stop is called, which returns the largest value seen. Sampling can
// miss a short peak, never invent one.
func heapPeak() (stop func() uint64) {
	done, result := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-result }
}

// TestHugeRepliesStayBounded: four endpoints each streaming 100 MB of
// well-formed PowerMTA JSON (long listings, a status document with a long
// member nobody reads). The round refuses every reply at the default cap of
// 16 MiB, reports up=0, and the heap never comes near the size of a reply:
// replies are parsed as they arrive, one endpoint after the other, and a
// listing keeps at most maxRows rows.
func TestHugeRepliesStayBounded(t *testing.T) {
	const size = 100 << 20
	srv := serveEndless(t, map[string]endless{
		"status": {head: `{"data":{"status":{"queue":{"smtp":{"rcp":5}}},"history":[`,
			row: `{"time":"2024-01-15 10:24:15","rcp":18342,"kb":912455.3}`, sep: ",", size: size},
		"queues": {head: `{"data":{"title":"Top queues","queue":[`,
			row: `{"name":"yahoo.com/vmta-yh-021","rcp":18342,"kb":912455.3,"conn":0,"paused":false,"mode":"backoff","retryTime":"2024-01-15 10:44:15"}`, sep: ",", size: size},
		"domains": {head: `{"data":{"title":"Top domains","domain":[`,
			row: `{"name":"yahoo.com","rcp":24410,"kb":1203398.0,"conn":2}`, sep: ",", size: size},
		"vmtas": {head: `{"data":{"vmta":[`,
			row: `{"name":"vmta-yh-021","domains":212,"rcp":18342,"kb":912455.3,"conn":0}`, sep: ",", size: size},
	})
	p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL, Interval: 5 * time.Minute, Timeout: 5 * time.Minute}), nil)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	b, err := p.Gather(context.Background())
	peak := stop()
	runtime.ReadMemStats(&after)
	runtime.GC()
	var retained runtime.MemStats
	runtime.ReadMemStats(&retained)

	if err == nil {
		t.Fatal("Gather accepted 100 MB replies")
	}
	for _, ep := range []string{"status", "queues", "domains", "vmtas"} {
		want := fmt.Sprintf("api %s: reply larger than %d bytes: refused (api.max_body_bytes)", ep, int64(DefaultConfig().MaxBodyBytes))
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	onlyUpZero(t, b)
	if got := statValue(t, p, "errors"); got != 4 {
		t.Errorf("errors stat = %d, want 4", got)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("served 4 × %d MiB; allocated %d MiB in all, heap peak %d MiB (%d MiB before), %d MiB kept after the round",
		size>>20, allocated>>20, peak>>20, before.HeapAlloc>>20, int64(retained.HeapAlloc-before.HeapAlloc)>>20)
	// Each listing reads up to the cap and keeps up to maxRows rows
	// (some 5 MiB, 12 MiB allocated while growing) until it is refused.
	if allocated > 96<<20 {
		t.Errorf("the round allocated %d MiB, want < 96 MiB for 400 MB served", allocated>>20)
	}
	if peak > before.HeapAlloc+48<<20 {
		t.Errorf("heap peaked at %d MiB, %d MiB above its start; want < 48 MiB above", peak>>20, (peak-before.HeapAlloc)>>20)
	}
	if retained.HeapAlloc > before.HeapAlloc+4<<20 {
		t.Errorf("%d MiB of heap kept after the round", (retained.HeapAlloc-before.HeapAlloc)>>20)
	}
}

// TestRepliesOverCapRefused: the cap holds whether the size is declared or
// not, for every format, and a reply of exactly the cap is fine.
func TestRepliesOverCapRefused(t *testing.T) {
	status, err := os.ReadFile(filepath.Join(jsonDocs(), "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 100 << 20
	queueXML := endless{head: "<rsp><data>", row: "<queue><name>gmail.com/vmta-gm-011</name><rcp>9120</rcp></queue>", size: size}
	cases := []struct {
		name    string
		cfg     Config
		maxBody int64 // 0: cfg's
		reply   http.Handler
		want    string
	}{
		{"declared length", Config{MaxBodyBytes: 1 << 20}, 0,
			endless{head: `{"data":{"queue":[`, row: `{"name":"a/b","rcp":1}`, sep: ",", size: size, contentLength: true},
			"reply larger than 1048576 bytes: refused (api.max_body_bytes)"},
		{"json chunked", Config{MaxBodyBytes: 1 << 20}, 0,
			endless{head: `{"data":{"queue":[`, row: `{"name":"a/b","rcp":1}`, sep: ",", size: size},
			"reply larger than 1048576 bytes: refused (api.max_body_bytes)"},
		{"xml", Config{Format: FormatXML, MaxBodyBytes: 1 << 20}, 0, queueXML,
			"reply larger than 1048576 bytes: refused (api.max_body_bytes)"},
		{"seed csv", Config{Dialect: DialectSeed, MaxBodyBytes: 1 << 20}, 0,
			endless{head: "domain,vmta,rcpt\n", row: "gmail.com,vmta-gm-011,9120", sep: "\n", size: size},
			"reply larger than 1048576 bytes: refused (api.max_body_bytes)"},
		{"json one long string", Config{}, 0,
			endless{head: `{"data":{"title":"`, row: "x", size: size},
			"a single JSON value is larger than 1048576 bytes"},
		{"one byte over", Config{}, int64(len(status)) - 1,
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(status) }),
			fmt.Sprintf("reply larger than %d bytes", len(status)-1)},
		{"exactly the cap", Config{}, int64(len(status)),
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(status) }), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := failingServer(t, tc.reply.ServeHTTP)
			cfg := tc.cfg
			cfg.URL = srv.URL
			cfg.Endpoints.Status = cfg.Dialect != DialectSeed
			cfg.Endpoints.Queues = cfg.Dialect == DialectSeed
			p, _ := newTestPoller(t, cfg, nil)
			if tc.maxBody != 0 {
				p.maxBody = tc.maxBody
			}
			b, err := p.Gather(context.Background())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Gather: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			onlyUpZero(t, b)
			if got := statValue(t, p, "errors"); got != 1 {
				t.Errorf("errors stat = %d, want 1", got)
			}
		})
	}
}

// TestEndpointsOneAtATime: a round never has two requests in flight, so
// that it never holds two replies.
func TestEndpointsOneAtATime(t *testing.T) {
	docs := docHandler(t, jsonDocs(), nil)
	var inFlight, most atomic.Int32
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // long enough for a parallel request to overlap
		docs.ServeHTTP(w, r)
	})
	p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL}), nil)
	if _, err := p.Gather(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m != 1 {
		t.Errorf("%d requests were in flight at once, want 1", m)
	}
}

func TestMaxBodyBytesConfig(t *testing.T) {
	p, err := New(Config{URL: "http://x", Endpoints: Endpoints{Status: true}}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if p.maxBody != int64(DefaultConfig().MaxBodyBytes) || DefaultConfig().MaxBodyBytes != 16<<20 {
		t.Errorf("default cap = %d, want 16 MiB", p.maxBody)
	}
	p, err = New(Config{URL: "http://x", Endpoints: Endpoints{Status: true}, MaxBodyBytes: 1000}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if p.maxBody != 1000 {
		t.Errorf("cap = %d, want the configured 1000", p.maxBody)
	}
	if _, err := New(Config{URL: "http://x", Endpoints: Endpoints{Status: true}, MaxBodyBytes: -1}, discardLogger()); err == nil ||
		!strings.Contains(err.Error(), "max_body_bytes: must be more than 0") {
		t.Errorf("New error = %v, want max_body_bytes refused", err)
	}
}
