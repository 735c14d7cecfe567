package acct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// missingPolls is how many scans in a row a file must be absent from the
	// globs before it is drained and forgotten; one is not enough, as a file
	// being moved between two watched directories can fall between globs.
	missingPolls = 3
	// idleClose is how long a fully read file may sit unchanged before its
	// descriptor is closed; it is reopened by path when it grows.
	idleClose = 5 * time.Minute
)

// fileEntry is one accounting file, known by its content rather than its
// path: the fingerprint (its first FingerprintSize bytes, or all of it while
// it is shorter) and, while the tailer runs, its device and inode. Where
// reading it stands is its fileCursor.
type fileEntry struct {
	fileCursor
	path       string
	fp         []byte
	dev, ino   uint64
	hasID      bool
	f          *os.File // open while the file is active or being drained
	size       int64    // size at the last scan
	mtime      time.Time
	lastChange time.Time // when size last changed, for idle closing
	cutOffset  int64     // offset at the last cut (or at load)
	seen       bool      // found by the current scan
	missing    int       // scans in a row that did not find it
	lagFrom    int64     // Unix ms of the oldest unread data, 0 when read to the end (see noteLag)
}

// fileset is the tailer's files: which the globs find, which of them is
// which known file (by device and inode, else by fingerprint) through
// renames, moves, copies and links, which were truncated, which are gone,
// and which descriptors can be closed. It reads no record: the tailer reads
// the entries' bytes through the parser. Only the polling goroutine uses it,
// but for Problems and its counters.
type fileset struct {
	globs  []string
	fpSize int
	log    *slog.Logger
	open   func(name string) (*os.File, error) // os.Open; tests make files unreadable

	entries []*fileEntry
	probs   problemState

	truncations, filesDone atomic.Int64
	// held is how many files the last scan set aside as the start of
	// another one (see copyOfSeen); heldLogged the paths logged so.
	held       atomic.Int64
	heldLogged map[string]bool
}

func newFileset(globs []string, fpSize int, log *slog.Logger) *fileset {
	return &fileset{globs: globs, fpSize: fpSize, log: log, open: os.Open}
}

// fpCompatible reports whether a file whose first bytes are cur can be the
// file fingerprinted as old: the same bytes, possibly more of them now.
func fpCompatible(old, cur []byte) bool {
	return len(old) <= len(cur) && bytes.Equal(cur[:len(old)], old)
}

func (s *fileset) readFP(f *os.File) ([]byte, error) {
	buf := make([]byte, s.fpSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("fingerprint %s: %w", f.Name(), err)
	}
	return buf[:n], nil
}

func (s *fileset) globPaths() ([]string, error) { return GlobFiles(s.globs) }

// GlobFiles returns the paths the globs match, sorted, each once; a bad
// pattern is reported after the others are listed.
func GlobFiles(globs []string) ([]string, error) {
	var paths []string
	var errs []error
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("glob %q: %w", g, err))
			continue
		}
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	return slices.Compact(paths), errors.Join(errs...)
}

type found struct {
	path     string
	fi       os.FileInfo
	dev, ino uint64
	hasID    bool
}

// discover matches the files the globs find now to the known ones: first by
// inode (a rename keeps it), checking that the content still starts the same
// way (else the file was truncated or rewritten); then, for files not known by
// inode — after a restart, or moved while the tailer was stopped — by
// fingerprint. Whatever matches nothing is a new file, returned in added
// (the tailer's StartAt applies to those of a very first start).
//
// A file is its device and inode, not its path: a symbolic or hard link to
// a watched file, or a bind mount of its directory, is the same file and is
// read once. What cannot be read — a glob's directory, a matched file — is
// a problem (see Problems), logged and reported by /readyz.
func (s *fileset) discover(now time.Time) (added []*fileEntry, err error) {
	paths, err := s.globPaths()
	errs := []error{err}
	probs := dirProblems(s.globs)
	defer func() { s.probs.set(probs, s.log) }()
	for _, e := range s.entries {
		e.seen = false
	}
	var rest []found
	var held []string
	defer func() { s.noteHeld(held) }()
	ids := make(map[[2]uint64]bool, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				probs = append(probs, fileProblem(p, err))
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		fd := found{path: p, fi: fi}
		fd.dev, fd.ino, _, fd.hasID = fileID(fi)
		if fd.hasID {
			id := [2]uint64{fd.dev, fd.ino}
			if ids[id] {
				continue // another name of a file found already
			}
			ids[id] = true
		}
		if e := s.byID(fd); e != nil {
			ok, err := s.rebind(e, fd, now)
			if err != nil {
				probs = append(probs, fileProblem(fd.path, err))
				errs = append(errs, err)
				// It is there, only unreadable for now: keep it, or it
				// would be forgotten and, readable again, read from the
				// start as a new file.
				e.seen, e.missing, e.path, e.name = true, 0, fd.path, fd.path
			}
			if ok || err != nil {
				continue
			}
		}
		rest = append(rest, fd)
	}
	for _, fd := range rest {
		e, isCopy, err := s.bindNew(fd, now)
		if isCopy {
			held = append(held, fd.path)
		}
		if err != nil {
			probs = append(probs, fileProblem(fd.path, err))
			errs = append(errs, err)
		}
		if e != nil {
			added = append(added, e)
		}
	}
	return added, errors.Join(errs...)
}

func (s *fileset) byID(fd found) *fileEntry {
	if !fd.hasID {
		return nil
	}
	for _, e := range s.entries {
		if !e.seen && e.hasID && e.dev == fd.dev && e.ino == fd.ino {
			return e
		}
	}
	return nil
}

// rebind updates a file found again by inode, checking for truncation. Only
// a file the tailer holds open is surely the same file: an inode whose file
// was deleted while not held open can come back as a new file, so a content
// mismatch there unbinds the entry (ok = false) and the file is matched anew.
func (s *fileset) rebind(e *fileEntry, fd found, now time.Time) (ok bool, err error) {
	held := e.f != nil
	size, mtime := fd.fi.Size(), fd.fi.ModTime()
	if size == e.size && mtime.Equal(e.mtime) && len(e.fp) == s.fpSize {
		s.noteMoved(e, fd.path)
		e.seen, e.missing = true, 0
		e.path, e.name = fd.path, fd.path
		return true, nil
	}
	f, err := s.openAt(e, fd.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // gone since the glob; bindNew will see
	}
	if err != nil {
		return false, err
	}
	fp, err := s.readFP(f)
	if err != nil {
		if !held {
			_ = f.Close()
		}
		return false, err
	}
	if size < e.offset || !fpCompatible(e.fp, fp) {
		if !held {
			_ = f.Close()
			e.f, e.hasID = nil, false
			return false, nil
		}
		e.size = size
		s.truncated(e)
	}
	if size != e.size {
		e.lastChange = now
	}
	s.noteMoved(e, fd.path)
	e.seen, e.missing = true, 0
	e.path, e.name = fd.path, fd.path
	e.f, e.fp, e.size, e.mtime = f, fp, size, mtime
	return true, nil
}

// bindNew matches a file not known by inode to a known fingerprint, or
// starts following it as a new file, which it returns.
func (s *fileset) bindNew(fd found, now time.Time) (added *fileEntry, isCopy bool, err error) {
	f, err := s.open(fd.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil // gone between the glob and the open
		}
		return nil, false, err // *fs.PathError: "open PATH: reason"
	}
	fp, err := s.readFP(f)
	if err != nil || len(fp) == 0 {
		// An empty file tells nothing apart yet; look again next scan.
		_ = f.Close()
		return nil, false, err
	}
	e := s.byFP(fp, fd)
	if e == nil && s.copyOfSeen(fp) {
		_ = f.Close()
		return nil, true, nil
	}
	if e == nil {
		e = &fileEntry{}
		s.entries = append(s.entries, e)
		added = e
		s.log.Debug("accounting file picked up", "file", fd.path, "size", fd.fi.Size())
	} else {
		if e.f != nil {
			_ = e.f.Close()
		}
		s.noteMoved(e, fd.path)
	}
	e.f, e.fp, e.seen, e.missing = f, fp, true, 0
	e.path, e.name = fd.path, fd.path
	e.dev, e.ino, e.hasID = fd.dev, fd.ino, fd.hasID
	e.size, e.mtime, e.lastChange = fd.fi.Size(), fd.fi.ModTime(), now
	if e.size < e.offset {
		s.truncated(e)
	}
	return added, false, nil
}

// byFP finds an entry not yet found by this scan whose fingerprint the file's
// first bytes extend. Entries holding an open descriptor are known by inode
// and not taken here. Among several (files that hold little more than the
// same header) the same inode wins, then the longest fingerprint; when such
// files have the same offset the choice does not matter, as their content up
// to it is equal.
func (s *fileset) byFP(fp []byte, fd found) *fileEntry {
	var best *fileEntry
	for _, e := range s.entries {
		if e.seen || !fpCompatible(e.fp, fp) {
			continue
		}
		// An entry still holding its descriptor is known by inode, unless
		// its file left every path the globs find (deleted, or moved to
		// another file system: copied, then deleted) and this is its copy.
		// A whole fingerprint that equals says so.
		if e.f != nil && len(e.fp) < s.fpSize {
			continue
		}
		if fd.hasID && e.hasID && e.dev == fd.dev && e.ino == fd.ino {
			return e
		}
		if best == nil || len(e.fp) > len(best.fp) {
			best = e
		}
	}
	return best
}

// copyOfSeen reports whether every byte of a new file so far equals the
// start of a file this scan found at another path: a copy being written (a
// move-to on another file system copies, then deletes the original), a
// duplicate, or a file that holds no more than the header yet. Nothing is
// lost by looking again at the next scan: the copy is bound to the
// original's entry once the original is gone, and a new file as soon as it
// holds a record of its own.
func (s *fileset) copyOfSeen(fp []byte) bool {
	for _, e := range s.entries {
		if e.seen && fpCompatible(fp, e.fp) {
			return true
		}
	}
	return false
}

// noteHeld publishes the files this scan set aside as copies and logs each
// once while it stays so: a file that holds only the start of another is
// not read, and an operator who put it there should be able to see why.
func (s *fileset) noteHeld(paths []string) {
	s.held.Store(int64(len(paths)))
	still := make(map[string]bool, len(paths))
	for _, p := range paths {
		still[p] = true
		if !s.heldLogged[p] {
			s.log.Info("accounting file holds only the start of another one; not read while it does (a copy being written, or a duplicate)",
				"file", p)
		}
	}
	s.heldLogged = still
}

func (s *fileset) truncated(e *fileEntry) {
	s.truncations.Add(1)
	s.log.Warn("accounting file truncated or rewritten; reading it again from the start",
		"file", e.path, "offset", e.offset, "size", e.size)
	e.offset, e.hdr, e.skipping, e.inNUL, e.last, e.eof = 0, nil, false, false, 0, 0
}

// openEntry returns e's descriptor, opening it by path if it has none.
func (s *fileset) openEntry(e *fileEntry) (*os.File, error) {
	f, err := s.openAt(e, e.path)
	if err != nil {
		return nil, err
	}
	e.f = f
	return f, nil
}

// openAt returns e's descriptor, opening path if there is none. The path may
// name another file by now; only the same inode will do.
func (s *fileset) openAt(e *fileEntry, path string) (*os.File, error) {
	if e.f != nil {
		return e.f, nil
	}
	f, err := s.open(path)
	if err != nil {
		return nil, err // *fs.PathError: "open PATH: reason"
	}
	if fi, err := f.Stat(); err == nil {
		if dev, ino, _, ok := fileID(fi); ok && e.hasID && (dev != e.dev || ino != e.ino) {
			_ = f.Close()
			return nil, fmt.Errorf("open %s: replaced while being opened", path)
		}
	}
	return f, nil
}

// absent counts one more scan that did not find e and reports whether it is
// gone for good: deleted (its link count is 0; what was written to it is
// still readable through the descriptor held) or absent for missingPolls
// scans in a row. The tailer drains a gone file, then forgets it; one only
// absent for now is read as usual.
func (s *fileset) absent(e *fileEntry) (gone bool) {
	e.missing++
	if e.f != nil {
		if fi, err := e.f.Stat(); err == nil {
			_, _, nlink, ok := fileID(fi)
			gone = ok && nlink == 0
		}
	}
	return gone || e.missing >= missingPolls
}

// forget drops a gone file, closing its descriptor.
// noteMoved logs a file found under another name: a rotation's move-to,
// or a copy to another file system.
func (s *fileset) noteMoved(e *fileEntry, path string) {
	if e.path != "" && e.path != path {
		s.log.Debug("accounting file moved", "from", e.path, "to", path, "offset", e.offset)
	}
}

func (s *fileset) forget(e *fileEntry) {
	s.log.Debug("accounting file read and gone; forgotten", "file", e.path, "offset", e.offset)
	if e.f != nil {
		_ = e.f.Close()
		e.f = nil
	}
	s.entries = slices.DeleteFunc(s.entries, func(x *fileEntry) bool { return x == e })
	s.filesDone.Add(1)
}

// closeIdle closes the descriptors of fully read files that have not changed
// for a while, so that days of rotated files do not hold descriptors.
func (s *fileset) closeIdle(now time.Time) {
	for _, e := range s.entries {
		if e.f != nil && e.seen && e.offset >= e.size && now.Sub(e.lastChange) >= idleClose {
			_ = e.f.Close()
			e.f = nil
		}
	}
}

// closeAll closes every descriptor held; the entries stay.
func (s *fileset) closeAll() error {
	var errs []error
	for _, e := range s.entries {
		if e.f != nil {
			errs = append(errs, e.f.Close())
			e.f = nil
		}
	}
	return errors.Join(errs...)
}

// sorted returns the entries in path order, a stable order for reading and
// for the checkpoint.
func (s *fileset) sorted() []*fileEntry {
	out := slices.Clone(s.entries)
	slices.SortFunc(out, func(a, b *fileEntry) int { return strings.Compare(a.path, b.path) })
	return out
}

// state returns the entries as a checkpoint saves them.
func (s *fileset) state() []fileState {
	out := make([]fileState, 0, len(s.entries))
	for _, e := range s.sorted() {
		fs := fileState{FP: e.fp, Path: e.path, Offset: e.offset, Dev: e.dev, Ino: e.ino, Skipping: e.skipping}
		if e.hdr != nil {
			fs.Header = e.hdr.names
		}
		out = append(out, fs)
	}
	return out
}

// restore replaces the entries with those of a saved state, closing the
// descriptors held; the next discover binds them to the files found.
func (s *fileset) restore(files []fileState) error {
	err := s.closeAll()
	s.entries = make([]*fileEntry, 0, len(files))
	for _, fs := range files {
		e := &fileEntry{fp: fs.FP, dev: fs.Dev, ino: fs.Ino, hasID: fs.Ino != 0}
		e.path, e.name, e.offset, e.skipping = fs.Path, fs.Path, fs.Offset, fs.Skipping
		e.cutOffset = fs.Offset
		if len(fs.Header) > 0 {
			e.hdr = newHeader(fs.Header)
		}
		s.entries = append(s.entries, e)
	}
	return err
}

// cutFiles lists the files read since the last cut, with their offsets now.
func (s *fileset) cutFiles() []cutFile {
	var cf []cutFile
	for _, e := range s.sorted() {
		if e.offset != e.cutOffset {
			cf = append(cf, cutFile{FPLen: len(e.fp), FPSum: fpSum(e.fp), Offset: e.offset})
		}
	}
	return cf
}

// markCut notes the offsets a cut recorded, for the next cutFiles.
func (s *fileset) markCut() {
	for _, e := range s.entries {
		e.cutOffset = e.offset
	}
}
