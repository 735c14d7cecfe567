// Package servertest runs the real servers the end-to-end tests need —
// InfluxDB, an OpenTelemetry Collector — as processes on free loopback
// ports: what influxtest and otelcoltest share.
package servertest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback port no one listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Missing skips the test for lack of a server binary, saying how to get it,
// or fails it under CI=true, where a missing server is a broken CI.
func Missing(t testing.TB, howToGetIt string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(howToGetIt)
	}
	t.Skip(howToGetIt)
}

// Process is a server process and what it printed.
type Process struct {
	name string
	args []string
	log  syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// NewProcess returns a process to run name with args; Start runs it.
func NewProcess(name string, args ...string) *Process {
	return &Process{name: name, args: args}
}

// Start runs the process and waits until ready reports true, or fails the
// test after timeout with what the process printed.
func (p *Process) Start(t testing.TB, what string, timeout time.Duration, ready func() bool) {
	t.Helper()
	cmd := exec.Command(p.name, p.args...)
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ready() {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited at start; its log:\n%s", what, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.Stop()
	t.Fatalf("%s was not ready within %s; its log:\n%s", what, timeout, p.log.String())
}

// Stop stops the process: SIGINT (servers flush on the way out), then
// SIGKILL after 10 s. It does nothing when the process is not running.
func (p *Process) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Log returns what the process printed so far.
func (p *Process) Log() string { return p.log.String() }

// syncBuffer is a bytes.Buffer the process's output goroutines and the test
// can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(q []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(q)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
