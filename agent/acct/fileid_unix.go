//go:build unix

package acct

import (
	"os"
	"syscall"
)

// fileID returns the device, inode and link count behind fi. A file keeps
// its inode across a rename within one volume, which is how PowerMTA's
// move-to works, and its link count drops to 0 once it is deleted.
func fileID(fi os.FileInfo) (dev, ino, nlink uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), uint64(st.Nlink), true //nolint:unconvert // widths differ per OS
}
