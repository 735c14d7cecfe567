//go:build unix

package relay

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO named as the tokens file is refused at once: opening it to read
// would otherwise wait for a writer, and the agent's start or reload with it.
func TestTokensFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "tokens")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := loadTokens(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no regular file") {
			t.Errorf("a FIFO: %v, want no regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loadTokens waits on a FIFO")
	}
}
