//go:build unix

package statefile

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir, "accounting state")
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDir(dir, "accounting state")
	want := fmt.Sprintf("accounting state directory %s is locked by another process (pid %d)", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir, "accounting state")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = l2.Release()
}
