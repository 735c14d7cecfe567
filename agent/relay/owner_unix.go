//go:build unix

package relay

import (
	"io/fs"
	"syscall"
)

// openFlags open the tokens file without waiting: a FIFO named as the
// tokens file would block the open until someone wrote to it — the agent's
// start or reload hung — instead of being refused as no regular file. A
// regular file ignores the flag.
const openFlags = syscall.O_NONBLOCK

// fileOwner returns the uid that owns a file, where the system says.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
