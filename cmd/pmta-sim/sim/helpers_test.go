package sim

import (
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// zone is the server's local zone in tests, as in the reference samples.
var zone = time.FixedZone("", -5*3600)

// testNow is the instant tests freeze the clock at.
var testNow = time.Date(2024, 1, 15, 10, 25, 0, 0, zone)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestSim builds a model on a frozen clock and serves it.
func newTestSim(t *testing.T, o Options) (*Sim, *clock, *httptest.Server) {
	t.Helper()
	c := newClock(testNow)
	if o.Clock == nil {
		o.Clock = c.Now
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	o.Logger = slog.New(slog.DiscardHandler)
	s := New(o)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, c, srv
}

// get fetches path and returns status and body.
func get(t *testing.T, srv *httptest.Server, path string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", path, err)
	}
	return resp.StatusCode, b
}

// getOK fetches path and fails unless it answered 200.
func getOK(t *testing.T, srv *httptest.Server, path string) []byte {
	t.Helper()
	code, b := get(t, srv, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, code, b)
	}
	return b
}

// postCommand sends a pmta form command.
func postCommand(t *testing.T, srv *httptest.Server, command, format string) (int, []byte) {
	t.Helper()
	form := url.Values{"command": {command}, "format": {format}}
	resp, err := srv.Client().PostForm(srv.URL+"/command", form)
	if err != nil {
		t.Fatalf("POST /command %q: %v", command, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// envelope decodes a JSON envelope, failing on anything but success.
func envelope(t *testing.T, b []byte, data any) {
	t.Helper()
	var env struct {
		Data    json.RawMessage `json:"data"`
		Status  string          `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("decode envelope: %v: %.200s", err, b)
	}
	if env.Status != "success" {
		t.Fatalf("status %q, message %q", env.Status, env.Message)
	}
	if data != nil {
		if err := json.Unmarshal(env.Data, data); err != nil {
			t.Fatalf("decode data: %v", err)
		}
	}
}

// readCSV parses a CSV listing into header and rows.
func readCSV(t *testing.T, b []byte) ([]string, [][]string) {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("csv: no header")
	}
	return rows[0], rows[1:]
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return v
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

// xnode is a generic XML element.
type xnode struct {
	XMLName xml.Name
	Text    string  `xml:",chardata"`
	Nodes   []xnode `xml:",any"`
}

func (n xnode) children(name string) []xnode {
	var out []xnode
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

// sameDoc checks that a decoded JSON value and an XML element carry the same
// values: objects are elements, arrays are repeated elements, numbers parse to
// the same float, booleans are 0/1 or yes/no.
func sameDoc(path string, j any, x xnode) error {
	switch v := j.(type) {
	case map[string]any:
		names := map[string]bool{}
		for k, jv := range v {
			names[k] = true
			kids := x.children(k)
			if arr, ok := jv.([]any); ok {
				if len(arr) != len(kids) {
					return fmt.Errorf("%s.%s: %d in JSON, %d in XML", path, k, len(arr), len(kids))
				}
				for i := range arr {
					if err := sameDoc(fmt.Sprintf("%s.%s[%d]", path, k, i), arr[i], kids[i]); err != nil {
						return err
					}
				}
				continue
			}
			if len(kids) != 1 {
				return fmt.Errorf("%s.%s: %d XML elements", path, k, len(kids))
			}
			if err := sameDoc(path+"."+k, jv, kids[0]); err != nil {
				return err
			}
		}
		for _, c := range x.Nodes {
			if !names[c.XMLName.Local] {
				return fmt.Errorf("%s.%s: only in XML", path, c.XMLName.Local)
			}
		}
	case float64:
		f, err := strconv.ParseFloat(x.Text, 64)
		if err != nil || f != v {
			return fmt.Errorf("%s: JSON %v, XML %q", path, v, x.Text)
		}
	case bool:
		want := map[bool][]string{true: {"1", "yes"}, false: {"0", "no"}}[v]
		if x.Text != want[0] && x.Text != want[1] {
			return fmt.Errorf("%s: JSON %v, XML %q", path, v, x.Text)
		}
	case string:
		if x.Text != v {
			return fmt.Errorf("%s: JSON %q, XML %q", path, v, x.Text)
		}
	default:
		return fmt.Errorf("%s: unexpected JSON %T", path, j)
	}
	return nil
}
