//go:build unix

package statefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DirLock is an exclusive flock on dir/LOCK, so that two agents never work
// on the same state (a sink queue, the accounting checkpoint). The kernel
// drops it when the process dies, so a crash never leaves a stale lock; the
// file (mode 0600, like all state) holds the owner's pid only to make the
// error message useful.
type DirLock struct {
	f *os.File
}

// LockDir takes the lock of dir; what names the directory in errors
// ("queue", "accounting state").
func LockDir(dir, what string) (*DirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s lock: %w", what, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
			if perr != nil {
				return nil, fmt.Errorf("%s directory %s is locked by another process (pid unknown)", what, dir)
			}
			return nil, fmt.Errorf("%s directory %s is locked by another process (pid %d)", what, dir, pid)
		}
		return nil, fmt.Errorf("lock %s directory %s: %w", what, dir, err)
	}
	// State written by an older agent may be 0644 in 0755: the directory
	// locked is the agent's own, so it is made private whatever made it.
	if err := privatize(f, dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s directory %s: %w", what, dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s lock: %w", what, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s lock: %w", what, err)
	}
	return &DirLock{f: f}, nil
}

// Release unlocks. The LOCK file stays: removing it would let a process that
// opened the old file and one that creates a new one both hold "the" lock.
func (l *DirLock) Release() error {
	if l == nil {
		return nil
	}
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN); err != nil {
		l.f.Close()
		return fmt.Errorf("unlock: %w", err)
	}
	return l.f.Close()
}

// privatize takes group and other permissions off the lock file and its
// directory.
func privatize(f *os.File, dir string) error {
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(fi.Mode().Perm() &^ 0o077); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, fi.Mode().Perm()&^0o077)
	}
	return nil
}
