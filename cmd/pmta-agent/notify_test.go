package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/engine"
)

// Under systemd (Type=notify) the agent says READY=1 once it runs, sends
// WATCHDOG=1 at half the watchdog interval, and STOPPING=1 when it stops.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")

	cfg := config.Default()
	cfg.Server, cfg.StateDir = "notify-test", t.TempDir()
	cfg.API.Enabled, cfg.Acct.Enabled, cfg.Listen.Enabled = false, false, false
	cfg.Sinks.Stdout.Enabled = true
	cfg.Sinks.Stdout.Buffer = engine.MemoryBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, &syncBuffer{}, slog.New(slog.DiscardHandler)) }()

	var got []string
	buf := make([]byte, 256)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		got = append(got, string(buf[:n]))
		if strings.Count(strings.Join(got, " "), "WATCHDOG=1") == 2 {
			cancel()
		}
		if got[len(got)-1] == "STOPPING=1" {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) < 4 || got[0] != "READY=1" || got[len(got)-1] != "STOPPING=1" || !strings.Contains(strings.Join(got, " "), "WATCHDOG=1") {
		t.Errorf("notifications %q, want READY=1, WATCHDOG=1…, STOPPING=1", got)
	}
	// Without NOTIFY_SOCKET nothing is sent and nothing fails.
	if err := (sdNotifier{}).notify("READY=1"); err != nil {
		t.Error(err)
	}
}
