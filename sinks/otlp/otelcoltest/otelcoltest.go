// Package otelcoltest runs a real OpenTelemetry Collector for tests — the
// OTLP receiver on gRPC and HTTP, and the file exporter writing OTLP JSON
// lines — and reads back what it received.
//
// The collector is built from the nested module testdata/otelcol by
// testdata/otelcol/build.sh into testdata/otelcol/bin/otelcol; $OTELCOL names
// another binary. Without one, Start skips the test with a message saying how
// to build it, or fails it when CI=true.
package otelcoltest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/internal/servertest"
)

// startTimeout bounds the wait for the collector's ports.
const startTimeout = 30 * time.Second

// Collector is a running collector with its own temporary directory.
type Collector struct {
	t        testing.TB
	conf     string
	out      string
	grpcPort int
	httpPort int
	proc     *servertest.Process
}

// Binary returns the collector binary: $OTELCOL, else
// <repo>/testdata/otelcol/bin/otelcol, where <repo> is found by walking up
// from the working directory (a test's package directory). It returns an
// error saying how to build it when there is none.
func Binary() (string, error) {
	if p := os.Getenv("OTELCOL"); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("OTELCOL=%s: no such file (unset it to use testdata/otelcol/bin/otelcol, built by testdata/otelcol/build.sh)", p)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		mod := filepath.Join(dir, "testdata", "otelcol", "go.mod")
		if isFile(mod) {
			bin := filepath.Join(dir, "testdata", "otelcol", "bin", "otelcol")
			if !isFile(bin) {
				return "", fmt.Errorf("collector binary %s not built: run %s (about two minutes)",
					bin, filepath.Join(dir, "testdata", "otelcol", "build.sh"))
			}
			return bin, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("testdata/otelcol not found above the working directory; set OTELCOL")
		}
	}
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start runs a collector on free loopback ports and stops it when the test
// ends.
func Start(t testing.TB) *Collector {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		servertest.Missing(t, err.Error())
	}
	dir := t.TempDir()
	c := &Collector{
		t:        t,
		conf:     filepath.Join(dir, "otelcol.yaml"),
		out:      filepath.Join(dir, "metrics.jsonl"),
		grpcPort: servertest.FreePort(t),
		httpPort: servertest.FreePort(t),
	}
	c.proc = servertest.NewProcess(bin, "--config", c.conf)
	if err := os.WriteFile(c.conf, []byte(c.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start()
	t.Cleanup(c.Stop)
	return c
}

// config is the collector's YAML: OTLP in, file out (appending, so that a
// restart keeps what came before), its own telemetry quiet and off the
// network so that parallel collectors do not collide on port 8888.
func (c *Collector) config() string {
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
exporters:
  file:
    path: %s
    format: json
    append: true
    flush_interval: 50ms
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [file]
`, c.grpcPort, c.httpPort, strconv.Quote(c.out))
}

func (c *Collector) start() {
	c.t.Helper()
	c.proc.Start(c.t, "collector", startTimeout, func() bool { return accepts(c.grpcPort) && accepts(c.httpPort) })
}

func accepts(port int) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Stop stops the collector (SIGINT, then SIGKILL after 10 s); the file
// exporter flushes on the way out. Restart starts it again.
func (c *Collector) Stop() { c.proc.Stop() }

// Restart starts a stopped collector on the same ports and output file.
func (c *Collector) Restart() {
	c.t.Helper()
	c.Stop()
	c.start()
}

// GRPCEndpoint is the OTLP/gRPC receiver's host:port.
func (c *Collector) GRPCEndpoint() string { return "127.0.0.1:" + strconv.Itoa(c.grpcPort) }

// HTTPEndpoint is the OTLP/HTTP receiver's base URL (without /v1/metrics).
func (c *Collector) HTTPEndpoint() string { return "http://127.0.0.1:" + strconv.Itoa(c.httpPort) }

// OutputFile is the file exporter's output.
func (c *Collector) OutputFile() string { return c.out }

// Log returns what the collector printed.
func (c *Collector) Log() string { return c.proc.Log() }

// Points reads every data point the collector has written so far.
func (c *Collector) Points() ([]Point, error) {
	data, err := os.ReadFile(c.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseFile(data)
}

// WaitPoints polls the output until done accepts the points read, and
// returns them; it fails the test after timeout with what it last saw.
func (c *Collector) WaitPoints(t testing.TB, timeout time.Duration, done func([]Point) bool) []Point {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pts, err := c.Points()
		if err != nil {
			t.Fatalf("read collector output: %v", err)
		}
		if done(pts) {
			return pts
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector output did not reach the expected state within %s: %d data points; collector log:\n%s",
				timeout, len(pts), c.proc.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
