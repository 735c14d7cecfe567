package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirLock is an exclusive flock on Dir/LOCK. The kernel drops it when the
// process dies, so a crash never leaves a stale lock behind; the file holds
// the owner's pid only to make the error message useful.
type dirLock struct {
	f *os.File
}

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open queue lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
			if perr != nil {
				return nil, fmt.Errorf("queue directory %s is locked by another process (pid unknown)", dir)
			}
			return nil, fmt.Errorf("queue directory %s is locked by another process (pid %d)", dir, pid)
		}
		return nil, fmt.Errorf("lock queue directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write queue lock: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write queue lock: %w", err)
	}
	return &dirLock{f: f}, nil
}

// release unlocks. The LOCK file stays: removing it would let a process that
// opened the old file and one that creates a new one both hold "the" lock.
func (l *dirLock) release() error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN); err != nil {
		l.f.Close()
		return fmt.Errorf("unlock queue directory: %w", err)
	}
	return l.f.Close()
}
