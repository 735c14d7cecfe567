//go:build unix

package statefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// zeroUmask clears the umask for the test, so that a mode seen on disk is the
// mode asked for. Tests using it are not parallel: the umask is the process's.
func zeroUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The LOCK file is private whatever the umask.
func TestLockFileIsPrivate(t *testing.T) {
	zeroUmask(t)
	dir := t.TempDir()
	l, err := LockDir(dir, "queue")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if m := mode(t, filepath.Join(dir, "LOCK")); m != 0o600 {
		t.Errorf("LOCK mode %v, want 0600", m)
	}
}

// The temporary file, and so the file it becomes, has exactly the mode asked
// for: not os.CreateTemp's fixed 0600.
func TestWriteAtomicUsesPerm(t *testing.T) {
	zeroUmask(t)
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o640, 0o644} {
		path := filepath.Join(dir, "state-"+perm.String())
		if err := WriteAtomic(path, []byte("x"), perm); err != nil {
			t.Fatal(err)
		}
		if m := mode(t, path); m != perm {
			t.Errorf("WriteAtomic(%v) made a file of mode %v", perm, m)
		}
	}
}
