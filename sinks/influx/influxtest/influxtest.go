// Package influxtest starts a real InfluxDB 1.8 server for end-to-end tests
// and queries it back with InfluxQL.
//
// The server binary is found in $INFLUXD, on $PATH as influxd, or in
// $(go env GOPATH)/bin; .ci/run installs it with
// `go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10`. Without a
// binary the test is skipped locally and fails when CI=true.
package influxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/internal/servertest"
)

// Server is a running influxd with its own temporary directories.
type Server struct {
	URL  string // http://127.0.0.1:port
	proc *servertest.Process
	t    testing.TB
}

// Binary returns the path of influxd, or "" when none is installed.
func Binary() string {
	if p := os.Getenv("INFLUXD"); p != "" {
		return p
	}
	if p, err := exec.LookPath("influxd"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	if p := filepath.Join(gopath, "bin", "influxd"); fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start runs influxd on loopback ports in t.TempDir() and stops it when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		servertest.Missing(t, "influxd not found (set INFLUXD or run: go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "influxd.conf")
	s := &Server{proc: servertest.NewProcess(bin, "run", "-config", conf), t: t}
	httpPort, rpcPort := servertest.FreePort(t), servertest.FreePort(t)
	text := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.proc.Start(s.t, "influxd", 30*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	})
}

// Stop stops the server; its data stays for Restart.
func (s *Server) Stop() { s.proc.Stop() }

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart() { s.start() }

// CreateDatabase runs CREATE DATABASE; 1.8's /api/v2/write needs it first.
func (s *Server) CreateDatabase(name string) {
	s.t.Helper()
	if _, err := s.Query("", "CREATE DATABASE "+quoteIdent(name)); err != nil {
		s.t.Fatal(err)
	}
}

// Write stores line protocol in db through InfluxDB 1.x's /write, so that
// a test can prepare what the agent meets (a field of another type).
func (s *Server) Write(db, lines string) error {
	resp, err := http.Post(s.URL+"/write?"+url.Values{"db": {db}}.Encode(), "text/plain", strings.NewReader(lines))
	if err != nil {
		return fmt.Errorf("influx write: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("influx write: HTTP %s: %s", resp.Status, body)
	}
	return nil
}

// Series is one series of an InfluxQL result.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs InfluxQL against db and returns the series of the first
// statement. Times come back as nanoseconds since the epoch; numbers as
// json.Number.
func (s *Server) Query(db, q string) ([]Series, error) {
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		form.Set("db", db)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []Series `json:"series"`
			Err    string   `json:"error"`
		} `json:"results"`
		Err string `json:"error"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("query %q: decode (HTTP %d): %w", q, resp.StatusCode, err)
	}
	if out.Err != "" {
		return nil, fmt.Errorf("query %q: %s", q, out.Err)
	}
	if len(out.Results) == 0 {
		return nil, nil
	}
	if out.Results[0].Err != "" {
		return nil, fmt.Errorf("query %q: %s", q, out.Results[0].Err)
	}
	return out.Results[0].Series, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
