//go:build !unix

package statefile

// DirLock is a no-op where flock does not exist: the agent is built for
// Linux; other systems only run its tests and tools.
type DirLock struct{}

// LockDir does nothing on this system.
func LockDir(dir, what string) (*DirLock, error) { return &DirLock{}, nil }

// Release does nothing on this system.
func (l *DirLock) Release() error { return nil }
