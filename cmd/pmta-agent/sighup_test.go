package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const hangupLine = `level=WARN msg="SIGHUP ignored: restart pmta-agent to apply a new configuration"`

// A SIGHUP neither stops the agent nor goes unnoticed: each one is logged as
// ignored, and SIGTERM still drains and exits 0.
func TestSIGHUPIsLoggedAndIgnored(t *testing.T) {
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, `server: hup-mta
state_dir: `+filepath.Join(dir, "state")+`
self_interval: 1h
shutdown_timeout: 5s
listen: {enabled: false}
api: {enabled: false}
acct: {enabled: false}
sinks: {stdout: {enabled: true}}
`)
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	readLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", readLog())
		}
	})

	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	t.Cleanup(func() {
		if running {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// waitLog waits until the log passes cond, failing at once if the agent
	// exits meanwhile.
	waitLog := func(what string, cond func(log string) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !cond(readLog()) {
			select {
			case err := <-exited:
				running = false
				t.Fatalf("the agent exited while waiting for %s: %v", what, err)
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Signals are caught from the start of main; "starting" is logged after.
	waitLog("the agent to start", func(log string) bool { return strings.Contains(log, "pmta-agent starting") })

	for n := 1; n <= 2; n++ {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLog("the SIGHUP log line", func(log string) bool { return strings.Count(log, hangupLine) >= n })
		select {
		case err := <-exited:
			running = false
			t.Fatalf("the agent exited after SIGHUP %d: %v", n, err)
		case <-time.After(300 * time.Millisecond):
		}
		if got := strings.Count(readLog(), hangupLine); got != n {
			t.Fatalf("after %d SIGHUPs the log holds %d lines %q", n, got, hangupLine)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		running = false
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop within 30 s of SIGTERM")
	}
	if !strings.Contains(readLog(), "pmta-agent stopped") {
		t.Error("no \"pmta-agent stopped\" after SIGTERM: it did not drain")
	}
}
