package statefile

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// WriteAtomic replaces the file at path with data so that a crash or a
// power cut leaves either the old content or the new one, never a torn mix:
// it writes a temporary file in the same directory, fsyncs it, renames it
// over path and fsyncs the directory, without which the rename itself may
// not survive a power cut.
//
// perm is applied as os.WriteFile applies it: to a new file, before the
// umask. The temporary file is named ".<base>.<random>.tmp": hidden from a
// casual listing, unique so that two writers never share it, and ending in
// ".tmp" so that a directory scan can recognise and remove the leftover of
// a write a crash interrupted. On failure it is removed.
//
// The error is that of the step that failed (an *fs.PathError or an
// *os.LinkError), without further context, for the caller to add its own.
// When only the directory sync failed, the error is a *DirSyncError: the new
// content is in place, but may not be after a power cut.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomicParts(path, perm, data)
}

// WriteAtomicParts is WriteAtomic of the parts written one after the other,
// for a caller whose content is pieces it holds already (a checkpoint that
// embeds a snapshot of megabytes), which need not be copied into one slice.
func WriteAtomicParts(path string, perm os.FileMode, parts ...[]byte) error {
	tmp, f, err := createTemp(path, perm)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err == nil {
			_, err = f.Write(p)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return &DirSyncError{Err: err}
	}
	return nil
}

// createTemp creates a new temporary file next to path. It is os.CreateTemp
// but for the mode: CreateTemp always uses 0600, and the caller's perm must
// hold for the file the temporary one becomes.
func createTemp(path string, perm os.FileMode) (string, *os.File, error) {
	dir, base := filepath.Split(path)
	for range 10000 {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(uint64(rand.Uint32()), 10)+".tmp")
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, "."+base+".*.tmp"), Err: fs.ErrExist}
}

// DirSyncError is WriteAtomic's error when the file was replaced but the
// directory could not be synced: readers see the new content now, yet a
// power cut may bring the old one back. Its text is the cause's alone, so a
// caller that does not care about the difference reports it like any other
// failure.
type DirSyncError struct {
	Err error
}

func (e *DirSyncError) Error() string { return e.Err.Error() }

func (e *DirSyncError) Unwrap() error { return e.Err }

// SyncDir fsyncs the directory dir, which makes the creation, rename or
// removal of a file in it durable: fsyncing the file alone does not.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
