package pmtacmd

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/agent/poller"
)

// testKey looks like an http-api-key: 32 to 128 of [A-Za-z0-9_].
const testKey = "K3y_0123456789abcdef0123456789abcdef"

// seen is what a test server received.
type seen struct {
	mu       sync.Mutex
	requests []seenRequest
}

type seenRequest struct {
	method, path, contentType, key, accept string
	form                                   map[string][]string
	body                                   string
}

func (s *seen) add(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sr := seenRequest{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
		key: r.Header.Get("X-API-Key"), accept: r.Header.Get("Accept"), body: string(body)}
	if strings.HasPrefix(sr.contentType, "application/x-www-form-urlencoded") {
		r.Body = io.NopCloser(strings.NewReader(sr.body))
		if err := r.ParseForm(); err == nil {
			sr.form = r.PostForm
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, sr)
	s.mu.Unlock()
}

func (s *seen) all() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.requests...)
}

// replying serves every request with code, content type and body.
func replying(t *testing.T, code int, ct, body string) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func testConfig(url, dialect string) poller.Config {
	cfg := poller.DefaultConfig()
	cfg.URL, cfg.Dialect, cfg.APIKey = url, dialect, testKey
	return cfg
}

func newTestClient(t *testing.T, cfg poller.Config) *Client {
	t.Helper()
	c, err := NewClient(cfg, logtest.New().Logger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustParse(t *testing.T, line string) Command {
	t.Helper()
	c, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// PowerMTA's Command API: POST {url}/command, the form fields command and
// format=json, the key in X-API-Key; the envelope's status decides, its
// data is kept as PowerMTA sent it.
func TestRunPMTA(t *testing.T) {
	tests := []struct {
		name, body     string
		message, data  string
		printable      string
		wantNilData    bool
		wantStatusText string
	}{
		{name: "action", body: `{"data": "", "status": "success", "message": "Queue(s) paused."}`,
			message: "Queue(s) paused.", data: `""`, printable: "Queue(s) paused.\n", wantStatusText: "success"},
		{name: "json-text data", body: `{"data":"154 of 3888 matching queues scheduled.\n","status":"success","message":""}`,
			data: `"154 of 3888 matching queues scheduled.\n"`, printable: "154 of 3888 matching queues scheduled.\n", wantStatusText: "success"},
		{name: "object data", body: `{"data":{"name":"PowerMTA","version":"5.0r8"},"status":"success","message":""}`,
			data: `{"name":"PowerMTA","version":"5.0r8"}`, printable: "{\n  \"name\": \"PowerMTA\",\n  \"version\": \"5.0r8\"\n}\n", wantStatusText: "success"},
		{name: "array data", body: `{"data":[{"name":"gmail.com/vmta-gm-011","rcp":9120}],"status":"success","message":"1 queue"}`,
			message: "1 queue", data: `[{"name":"gmail.com/vmta-gm-011","rcp":9120}]`, wantStatusText: "success"},
		{name: "no data, status in capitals", body: `{"status":"SUCCESS","message":"Counters reset."}`,
			message: "Counters reset.", wantNilData: true, printable: "Counters reset.\n", wantStatusText: "SUCCESS"},
		{name: "null data, extra fields", body: `{"data":null,"status":"success","message":"ok","elapsed":3}`,
			message: "ok", wantNilData: true, wantStatusText: "success"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, s := replying(t, 200, "application/json", tc.body)
			c := newTestClient(t, testConfig(srv.URL, "pmta"))
			cmd := mustParse(t, `pause queue outlook.com/*`)
			r, err := c.Run(context.Background(), cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !r.OK || r.Status != tc.wantStatusText || r.Message != tc.message || r.Sent.String() != cmd.String() {
				t.Errorf("reply %+v", r)
			}
			if tc.wantNilData != (r.Data == nil) || (!tc.wantNilData && string(r.Data) != tc.data) {
				t.Errorf("data %s, want %s", r.Data, tc.data)
			}
			if tc.printable != "" && r.Printable() != tc.printable {
				t.Errorf("Printable() = %q, want %q", r.Printable(), tc.printable)
			}
			reqs := s.all()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			q := reqs[0]
			if q.method != "POST" || q.path != "/command" || q.contentType != "application/x-www-form-urlencoded" ||
				q.key != testKey || q.accept != "application/json" {
				t.Errorf("request %+v", q)
			}
			if got := q.form; len(got) != 2 || got["command"][0] != "pause queue outlook.com/*" || got["format"][0] != "json" {
				t.Errorf("form %v", got)
			}
		})
	}
}

// A reverse proxy's path prefix is kept: {url}/command.
func TestRunKeepsURLPath(t *testing.T) {
	srv, s := replying(t, 200, "application/json", `{"data":"","status":"success","message":"ok"}`)
	c := newTestClient(t, testConfig(srv.URL+"/pmta/", "pmta"))
	if _, err := c.Run(context.Background(), mustParse(t, "show status")); err != nil {
		t.Fatal(err)
	}
	if p := s.all()[0].path; p != "/pmta/command" {
		t.Errorf("path %q", p)
	}
}

// A refusal is a *RefusedError with PowerMTA's message; the reply comes
// with it.
func TestRunRefused(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
		message    string
	}{
		{"error envelope", `{"data":"","status":"error","message":"no queue matches \"nosuch.example/*\""}`, 200, `no queue matches "nosuch.example/*"`},
		{"failure word", `{"data":"","status":"failure","message":"unknown command"}`, 200, "unknown command"},
		{"reason in data", `{"data":"error: unknown option --now\n","status":"error","message":""}`, 200, "error: unknown option --now"},
		{"400 with envelope", `{"data":"","status":"error","message":"bad form"}`, 400, "bad form"},
		{"no reason", `{"data":"","status":"error","message":""}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := replying(t, tc.code, "application/json", tc.body)
			c := newTestClient(t, testConfig(srv.URL, "pmta"))
			r, err := c.Run(context.Background(), mustParse(t, "schedule nosuch.example/*"))
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("error %v (%T), want *RefusedError", err, err)
			}
			if refused.Message != tc.message || r.OK || r.Message == "x" {
				t.Errorf("refusal %+v, reply %+v", refused, r)
			}
			if want := `PowerMTA refused "schedule nosuch.example/*": `; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q", err)
			}
			var herr *HTTPError
			if errors.As(err, &herr) || errors.Is(err, ErrInvalid) {
				t.Errorf("a refusal is also another kind of error: %v", err)
			}
		})
	}
}

// HTTP errors are no refusal: PowerMTA did not answer the command.
func TestRunHTTPErrors(t *testing.T) {
	tests := []struct {
		code int
		ct   string
		body string
		hint string
	}{
		{401, "text/plain", "unauthorized", "http-access"},
		{403, "text/html", "<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>access forbidden</p></body></html>", "http-api-key"},
		{404, "text/plain", "404 page not found", "api.url"},
		{405, "text/plain", "method not allowed", "api.dialect"},
		{500, "application/json", `{"data":"","status":"error","message":"internal"}`, "failed"},
		{502, "text/html", "<html>bad gateway</html>", "proxy"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv, _ := replying(t, tc.code, tc.ct, tc.body)
			c := newTestClient(t, testConfig(srv.URL, "pmta"))
			_, err := c.Run(context.Background(), mustParse(t, "pause queue x.example/*"))
			var herr *HTTPError
			var refused *RefusedError
			if !errors.As(err, &herr) || errors.As(err, &refused) {
				t.Fatalf("error %v (%T), want *HTTPError only", err, err)
			}
			if herr.Code != tc.code || !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("error %q: want code %d and %q", err, tc.code, tc.hint)
			}
		})
	}
}

// A 200 that is not PowerMTA's envelope is an error of its own: not a
// refusal, since nobody refused anything.
func TestRunNotPowerMTA(t *testing.T) {
	for name, body := range map[string]string{
		"HTML login page": "<!DOCTYPE html><html><body>Please log in</body></html>",
		"plain text":      "Queue(s) paused.",
		"no status":       `{"data":"","message":"Queue(s) paused."}`,
		"XML":             "<rsp><data/><succ/></rsp>",
		"empty":           "",
		"JSON array":      `[1,2]`,
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := replying(t, 200, "text/html", body)
			c := newTestClient(t, testConfig(srv.URL, "pmta"))
			r, err := c.Run(context.Background(), mustParse(t, "pause queue x.example/*"))
			var refused *RefusedError
			var herr *HTTPError
			if err == nil || errors.As(err, &refused) || errors.As(err, &herr) || r.OK {
				t.Fatalf("error %v (%T), reply %+v", err, err, r)
			}
		})
	}
}

// A reply is read up to api.max_body_bytes: exactly that is fine, one byte
// more is refused, announced or not.
func TestRunReplySize(t *testing.T) {
	const limit = 128
	envelopeOf := func(n int) string {
		head, tail := `{"data":"","status":"success","message":"`, `"}`
		return head + strings.Repeat("m", n-len(head)-len(tail)) + tail
	}
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		ok      bool
	}{
		{"at the cap", limit, false, true},
		{"at the cap, chunked", limit, true, true},
		{"over, announced", limit + 1, false, false},
		{"over, chunked", limit + 1, true, false},
		{"far over, chunked", 10 << 20, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := envelopeOf(tc.size)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tc.chunked {
					io.WriteString(w, body[:10])
					w.(http.Flusher).Flush() // no Content-Length from here on
					io.WriteString(w, body[10:])
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				io.WriteString(w, body)
			}))
			defer srv.Close()
			cfg := testConfig(srv.URL, "pmta")
			cfg.MaxBodyBytes = limit
			_, err := newTestClient(t, cfg).Run(context.Background(), mustParse(t, "show status"))
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "api.max_body_bytes")) {
				t.Fatalf("error %v, want one naming api.max_body_bytes", err)
			}
		})
	}
}

// api.timeout bounds the whole exchange, a body that stalls included, and
// says so; a cancelled caller is not a timeout.
func TestRunTimeout(t *testing.T) {
	// stalling answers nothing (or the start of a body) until the client
	// gives up or the test ends. It reads the request body first: only then
	// does the server notice a client that hangs up.
	stalling := func(t *testing.T, partialBody bool) *httptest.Server {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			if partialBody {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"data":`)
				w.(http.Flusher).Flush()
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) }) // runs before srv.Close
		return srv
	}
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprint("partial body ", partial), func(t *testing.T) {
			cfg := testConfig(stalling(t, partial).URL, "pmta")
			cfg.Timeout = 100 * time.Millisecond
			_, err := newTestClient(t, cfg).Run(context.Background(), mustParse(t, "show status"))
			var refused *RefusedError
			if err == nil || errors.As(err, &refused) || !strings.Contains(err.Error(), "within 100ms (api.timeout)") {
				t.Fatalf("error %v", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v is not a deadline", err)
			}
		})
	}
	t.Run("caller cancels", func(t *testing.T) {
		srv := stalling(t, false)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := newTestClient(t, testConfig(srv.URL, "pmta")).Run(ctx, mustParse(t, "show status"))
		if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "api.timeout") {
			t.Fatalf("error %v", err)
		}
	})
}

// The key goes only to the configured origin; a redirect that repeats the
// POST (307, 308) is followed, one that would turn it into a GET is not.
func TestRunRedirects(t *testing.T) {
	ok := `{"data":"","status":"success","message":"Queue(s) paused."}`
	elsewhere, elsewhereSeen := replying(t, 200, "application/json", ok)
	for _, tc := range []struct {
		name      string
		code      int
		to        func(origin string) string
		wantErr   string
		keyAtDest bool
	}{
		{"307 to another port", http.StatusTemporaryRedirect, func(string) string { return elsewhere.URL + "/command" }, "", false},
		{"308 to another port", http.StatusPermanentRedirect, func(string) string { return elsewhere.URL + "/command" }, "", false},
		{"307 on the same origin", http.StatusTemporaryRedirect, func(o string) string { return o + "/v2/command" }, "", true},
		{"302 would make a GET", http.StatusFound, func(string) string { return elsewhere.URL + "/command" }, "not following the redirect", false},
		{"301 would make a GET", http.StatusMovedPermanently, func(o string) string { return o + "/v2/command" }, "not following the redirect", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(elsewhereSeen.all())
			origin := &seen{}
			var originURL string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				origin.add(r)
				if r.URL.Path == "/v2/command" {
					io.WriteString(w, ok)
					return
				}
				http.Redirect(w, r, tc.to(originURL), tc.code)
			}))
			defer srv.Close()
			originURL = srv.URL
			_, err := newTestClient(t, testConfig(srv.URL, "pmta")).Run(context.Background(), mustParse(t, "pause queue x.example/*"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if n := len(elsewhereSeen.all()) - before; n != 0 {
					t.Errorf("the redirect target got %d requests", n)
				}
				for _, r := range origin.all() {
					if r.method != "POST" {
						t.Errorf("a %s reached the origin", r.method)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var dest seenRequest
			if all := origin.all(); len(all) == 2 {
				dest = all[1]
			} else if all := elsewhereSeen.all(); len(all) == before+1 {
				dest = all[before]
			} else {
				t.Fatal("the redirect target got no request")
			}
			if dest.method != "POST" || dest.form["command"][0] != "pause queue x.example/*" {
				t.Errorf("the target got %+v", dest)
			}
			if (dest.key == testKey) != tc.keyAtDest {
				t.Errorf("key at the target: %v, want %v", dest.key == testKey, tc.keyAtDest)
			}
			if origin.all()[0].key != testKey {
				t.Error("the origin got no key")
			}
		})
	}
}

// Whatever comes back repeats no API key: a proxy may echo the request.
func TestRunScrubsTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		body string
	}{
		{"message", 200, `{"data":"","status":"success","message":"X-API-Key: ` + testKey + `"}`},
		{"data", 200, `{"data":{"echo":"` + testKey + `"},"status":"success","message":""}`},
		{"refusal", 200, `{"data":"","status":"error","message":"bad key ` + testKey + `"}`},
		{"HTTP error", 500, `X-API-Key: ` + testKey},
		{"not an envelope", 200, `key=` + testKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := replying(t, tc.code, "application/json", tc.body)
			rec := logtest.New()
			c, err := NewClient(testConfig(srv.URL, "pmta"), rec.Logger())
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Run(context.Background(), mustParse(t, "show status"))
			b, _ := json.Marshal(r)
			for what, s := range map[string]string{"reply": string(b), "printable": r.Printable(), "error": fmt.Sprint(err), "log": rec.String()} {
				if strings.Contains(s, testKey) {
					t.Errorf("the %s holds the key: %s", what, s)
				}
			}
			if tc.name == "refusal" {
				var refused *RefusedError
				if !errors.As(err, &refused) || !strings.Contains(refused.Message, "[redacted]") {
					t.Errorf("refusal %v (%T)", err, err)
				}
			}
			if tc.name == "data" && !json.Valid(r.Data) {
				t.Errorf("data %s", r.Data)
			}
		})
	}
}

// The seed dialect: the command line as a text/plain body, the reply text;
// a 400 is the proxy refusing, with its reason.
func TestRunSeed(t *testing.T) {
	srv, s := replying(t, 200, "text/plain; charset=utf-8", "Queue(s) paused.\n")
	c := newTestClient(t, testConfig(srv.URL, "seed"))
	r, err := c.Run(context.Background(), mustParse(t, "pause queue outlook.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Text != "Queue(s) paused.\n" || r.Message != "Queue(s) paused." || r.Status != "success" || r.Data != nil {
		t.Errorf("reply %+v", r)
	}
	if r.Printable() != "Queue(s) paused.\n" {
		t.Errorf("Printable %q", r.Printable())
	}
	q := s.all()[0]
	if q.method != "POST" || q.path != "/command" || q.contentType != "text/plain; charset=utf-8" || q.body != "pause queue outlook.com" || q.key != testKey {
		t.Errorf("request %+v", q)
	}

	srv, _ = replying(t, 400, "text/plain", "error: no queue matches \"nosuch.example\"\n")
	r, err = newTestClient(t, testConfig(srv.URL, "seed")).Run(context.Background(), mustParse(t, "retry queue nosuch.example"))
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Message != `no queue matches "nosuch.example"` || r.OK {
		t.Errorf("error %v (%T), reply %+v", err, err, r)
	}

	for code, body := range map[int]string{403: forbiddenPage, 500: "oops", 200: forbiddenPage} {
		srv, _ = replying(t, code, "text/html", body)
		_, err = newTestClient(t, testConfig(srv.URL, "seed")).Run(context.Background(), mustParse(t, "pause queue x.example"))
		if err == nil || errors.As(err, &refused) {
			t.Errorf("HTTP %d: error %v", code, err)
		}
	}
}

const forbiddenPage = "<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>access forbidden</p></body></html>\n"

// The seed proxy's multi-line answer is text, not a message.
func TestRunSeedMultiLine(t *testing.T) {
	srv, _ := replying(t, 200, "text/plain", "line one\nline two\n")
	r, err := newTestClient(t, testConfig(srv.URL, "seed")).Run(context.Background(), mustParse(t, "show status"))
	if err != nil || r.Message != "" || r.Printable() != "line one\nline two\n" {
		t.Errorf("reply %+v, %v", r, err)
	}
}

// A command that could not have come from Parse is not sent.
func TestRunRefusesToSendInvalid(t *testing.T) {
	srv, s := replying(t, 200, "application/json", `{"data":"","status":"success","message":""}`)
	c := newTestClient(t, testConfig(srv.URL, "pmta"))
	for _, cmd := range []Command{{}, {Verb: "pause", Args: []string{"queue", "x/*\nreload"}}, {Verb: "pause", Args: []string{`"queue`}}} {
		if _, err := c.Run(context.Background(), cmd); !errors.Is(err, ErrInvalid) {
			t.Errorf("Run(%q) = %v, want ErrInvalid", cmd.words(), err)
		}
	}
	if n := len(s.all()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// Nobody listening: an error that is neither a refusal nor an HTTP error.
func TestRunUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newTestClient(t, testConfig(url, "pmta")).Run(context.Background(), mustParse(t, "show status"))
	var refused *RefusedError
	var herr *HTTPError
	if err == nil || errors.As(err, &refused) || errors.As(err, &herr) || errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v (%T)", err, err)
	}
}

// HTTPS with PowerMTA's self-signed certificate: trusted through
// api.tls.ca_file, refused without it.
func TestRunTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":"","status":"success","message":"Queue(s) resumed."}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "webmon.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL, "pmta")
	if _, err := newTestClient(t, cfg).Run(context.Background(), mustParse(t, "resume queue x.example/*")); err == nil {
		t.Error("an unknown certificate was accepted")
	}
	cfg.TLS.CAFile = ca
	r, err := newTestClient(t, cfg).Run(context.Background(), mustParse(t, "resume queue x.example/*"))
	if err != nil || r.Message != "Queue(s) resumed." {
		t.Fatalf("reply %+v, %v", r, err)
	}
}

func TestNewClient(t *testing.T) {
	logger := logtest.New().Logger()
	good := testConfig("http://127.0.0.1:8080", "pmta")
	if _, err := NewClient(good, nil); err == nil {
		t.Error("no logger accepted")
	}
	off := good
	off.Enabled = false
	if _, err := NewClient(off, logger); !errors.Is(err, ErrAPIDisabled) {
		t.Errorf("disabled: %v", err)
	}
	for name, mutate := range map[string]func(*poller.Config){
		"no URL":             func(c *poller.Config) { c.URL = "" },
		"not http":           func(c *poller.Config) { c.URL = "ftp://127.0.0.1" },
		"credentials in URL": func(c *poller.Config) { c.URL = "http://u:secret@127.0.0.1:8080" },
		"key in clear text":  func(c *poller.Config) { c.URL = "http://mta01.example:8080" },
		"bad dialect":        func(c *poller.Config) { c.Dialect = "xml" },
		"missing CA file":    func(c *poller.Config) { c.TLS.CAFile = "/nonexistent/ca.pem" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := NewClient(cfg, logger); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), testKey) {
			t.Errorf("%s: the error repeats a secret: %v", name, err)
		}
	}
	// A Config built in code gets the poller's defaults.
	c, err := NewClient(poller.Config{Enabled: true, URL: "http://127.0.0.1:8080"}, logger)
	if err != nil || c.timeout != poller.DefaultConfig().Timeout || c.maxBody != int64(poller.DefaultConfig().MaxBodyBytes) || c.dialect != "pmta" {
		t.Errorf("client %+v, %v", c, err)
	}
}

// In JSON a reply names the command as its line.
func TestReplyJSON(t *testing.T) {
	r := Reply{Sent: Command{Verb: "show", Args: []string{"status"}}, OK: true, Status: "success", Data: json.RawMessage(`{"a":1}`)}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"sent":"show status","ok":true,"status":"success","message":"","data":{"a":1}}`; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// Printable leaves no escape sequence or bidirectional override of a
// stranger's reply for the terminal.
func TestPrintable(t *testing.T) {
	r := Reply{Message: "paused\x1b[2J", Data: json.RawMessage(`"table\r\n\u001b]0;title\u0007 row\u202e\n"`)}
	got := r.Printable()
	if want := "paused [2J\ntable\n ]0;title  row \n"; got != want {
		t.Errorf("Printable() = %q, want %q", got, want)
	}
	if (Reply{}).Printable() != "" {
		t.Error("an empty reply prints something")
	}
}
