package acct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fileEntry is one accounting file, known by its content rather than its
// path: the fingerprint (its first FingerprintSize bytes, or all of it while
// it is shorter) and, while the tailer runs, its device and inode.
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

// fpCompatible reports whether a file whose first bytes are cur can be the
// file fingerprinted as old: the same bytes, possibly more of them now.
func fpCompatible(old, cur []byte) bool {
	return len(old) <= len(cur) && bytes.Equal(cur[:len(old)], old)
}

func (t *Tailer) readFP(f *os.File) ([]byte, error) {
	buf := make([]byte, t.cfg.FingerprintSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("fingerprint %s: %w", f.Name(), err)
	}
	return buf[:n], nil
}

func (t *Tailer) globPaths() ([]string, error) {
	var paths []string
	var errs []error
	for _, g := range t.cfg.Globs {
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
// fingerprint. Whatever matches nothing is a new file.
//
// A file is its device and inode, not its path: a symbolic or hard link to
// a watched file, or a bind mount of its directory, is the same file and is
// read once. What cannot be read — a glob's directory, a matched file — is
// a problem (see Problems), logged and reported by /readyz.
func (t *Tailer) discover(now time.Time) error {
	paths, err := t.globPaths()
	errs := []error{err}
	probs := dirProblems(t.cfg.Globs)
	defer func() { t.setProblems(probs) }()
	for _, e := range t.files {
		e.seen = false
	}
	var rest []found
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
		if e := t.byID(fd); e != nil {
			ok, err := t.rebind(e, fd, now)
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
		if err := t.bindNew(fd, now); err != nil {
			probs = append(probs, fileProblem(fd.path, err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Tailer) byID(fd found) *fileEntry {
	if !fd.hasID {
		return nil
	}
	for _, e := range t.files {
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
func (t *Tailer) rebind(e *fileEntry, fd found, now time.Time) (ok bool, err error) {
	held := e.f != nil
	size, mtime := fd.fi.Size(), fd.fi.ModTime()
	if size == e.size && mtime.Equal(e.mtime) && len(e.fp) == t.cfg.FingerprintSize {
		e.seen, e.missing = true, 0
		e.path, e.name = fd.path, fd.path
		return true, nil
	}
	f, err := t.openAt(e, fd.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // gone since the glob; bindNew will see
	}
	if err != nil {
		return false, err
	}
	fp, err := t.readFP(f)
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
		t.truncated(e)
	}
	if size != e.size {
		e.lastChange = now
	}
	e.seen, e.missing = true, 0
	e.path, e.name = fd.path, fd.path
	e.f, e.fp, e.size, e.mtime = f, fp, size, mtime
	return true, nil
}

// bindNew matches a file not known by inode to a known fingerprint, or
// starts following it as a new file.
func (t *Tailer) bindNew(fd found, now time.Time) error {
	f, err := t.open(fd.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // gone between the glob and the open
		}
		return err // *fs.PathError: "open PATH: reason"
	}
	fp, err := t.readFP(f)
	if err != nil || len(fp) == 0 {
		// An empty file tells nothing apart yet; look again next scan.
		_ = f.Close()
		return err
	}
	e := t.byFP(fp, fd)
	if e == nil && t.copyOfSeen(fp) {
		_ = f.Close()
		return nil
	}
	if e == nil {
		e = &fileEntry{}
		t.files = append(t.files, e)
		if t.first && t.cfg.StartAt == "end" {
			defer t.skipExisting(e)
		}
	} else if e.f != nil {
		_ = e.f.Close()
	}
	e.f, e.fp, e.seen, e.missing = f, fp, true, 0
	e.path, e.name = fd.path, fd.path
	e.dev, e.ino, e.hasID = fd.dev, fd.ino, fd.hasID
	e.size, e.mtime, e.lastChange = fd.fi.Size(), fd.fi.ModTime(), now
	if e.size < e.offset {
		t.truncated(e)
	}
	return nil
}

// byFP finds an entry not yet found by this scan whose fingerprint the file's
// first bytes extend. Entries holding an open descriptor are known by inode
// and not taken here. Among several (files that hold little more than the
// same header) the same inode wins, then the longest fingerprint; when such
// files have the same offset the choice does not matter, as their content up
// to it is equal.
func (t *Tailer) byFP(fp []byte, fd found) *fileEntry {
	var best *fileEntry
	for _, e := range t.files {
		if e.seen || !fpCompatible(e.fp, fp) {
			continue
		}
		// An entry still holding its descriptor is known by inode, unless
		// its file left every path the globs find (deleted, or moved to
		// another file system: copied, then deleted) and this is its copy.
		// A whole fingerprint that equals says so.
		if e.f != nil && len(e.fp) < t.cfg.FingerprintSize {
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
func (t *Tailer) copyOfSeen(fp []byte) bool {
	for _, e := range t.files {
		if e.seen && fpCompatible(fp, e.fp) {
			return true
		}
	}
	return false
}

func (t *Tailer) truncated(e *fileEntry) {
	t.st.truncations.Add(1)
	t.log.Warn("accounting file truncated or rewritten; reading it again from the start",
		"file", e.path, "offset", e.offset, "size", e.size)
	e.offset, e.hdr, e.skipping, e.last, e.eof = 0, nil, false, 0, 0
}

// skipExisting moves a file found at the very first start to its end, as
// StartAt "end" asks, still following its header rows so that the records
// appended later are read with the right columns.
func (t *Tailer) skipExisting(e *fileEntry) {
	p := t.parser
	lines, bad, read := p.lines, p.malformed, p.bytesRead
	p.discard = true
	_, _, err := p.readFile(e.f, &e.fileCursor, noLimit, false, noUntil, nil)
	p.discard = false
	p.lines, p.malformed, p.bytesRead = lines, bad, read
	if err != nil {
		t.errLog.log("skipping existing accounting file failed", "file", e.path, "err", err)
	}
}

func (t *Tailer) openEntry(e *fileEntry) (*os.File, error) {
	f, err := t.openAt(e, e.path)
	if err != nil {
		return nil, err
	}
	e.f = f
	return f, nil
}

// openAt returns e's descriptor, opening path if there is none. The path may
// name another file by now; only the same inode will do.
func (t *Tailer) openAt(e *fileEntry, path string) (*os.File, error) {
	if e.f != nil {
		return e.f, nil
	}
	f, err := t.open(path)
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

// readEntry reads a file from its offset to its last complete line (or up
// to limit); final says the file will never grow again.
func (t *Tailer) readEntry(e *fileEntry, limit int64, final bool) error {
	if e.f == nil && e.offset >= e.size && limit == noLimit && !final {
		return nil
	}
	f, err := t.openEntry(e)
	if err != nil {
		return err
	}
	var after func()
	if limit == noLimit {
		after = t.boundOpen
	}
	_, _, err = t.parser.readFile(f, &e.fileCursor, limit, final, noUntil, after)
	return err
}

// readEntryUntil reads a live file like readEntry, but stops before its
// first record logged at or after until and returns that record's time
// (stopped = false: the file was read to its last complete line). The
// offset it stops at is that record's start, a record boundary, so a cut
// made there is replayed exactly by reading up to it.
func (t *Tailer) readEntryUntil(e *fileEntry, until int64) (stopped bool, next int64, err error) {
	if e.f == nil && e.offset >= e.size {
		return false, 0, nil
	}
	f, err := t.openEntry(e)
	if err != nil {
		return false, 0, err
	}
	return t.parser.readFile(f, &e.fileCursor, noLimit, false, until, t.boundOpen)
}

// missing handles a known file the scan did not find. Deleted (its link
// count is 0) it is drained through the descriptor still open and forgotten;
// absent for missingPolls scans in a row it is drained and forgotten too.
func (t *Tailer) missing(e *fileEntry) error {
	e.missing++
	gone := false
	if e.f != nil {
		if fi, err := e.f.Stat(); err == nil {
			_, _, nlink, ok := fileID(fi)
			gone = ok && nlink == 0
		}
	}
	if !gone && e.missing < missingPolls {
		if e.f == nil {
			return nil
		}
		return t.readEntry(e, noLimit, false)
	}
	if e.f != nil {
		if err := t.readEntry(e, noLimit, true); err != nil {
			return err
		}
		_ = e.f.Close()
		e.f = nil
	}
	t.files = slices.DeleteFunc(t.files, func(x *fileEntry) bool { return x == e })
	t.st.filesDone.Add(1)
	return nil
}

// closeIdle closes the descriptors of fully read files that have not changed
// for a while, so that days of rotated files do not hold descriptors.
func (t *Tailer) closeIdle(now time.Time) {
	for _, e := range t.files {
		if e.f != nil && e.seen && e.offset >= e.size && now.Sub(e.lastChange) >= idleClose {
			_ = e.f.Close()
			e.f = nil
		}
	}
}

// sortedFiles returns the entries in path order, a stable order for reading.
func (t *Tailer) sortedFiles() []*fileEntry {
	s := slices.Clone(t.files)
	slices.SortFunc(s, func(a, b *fileEntry) int { return strings.Compare(a.path, b.path) })
	return s
}
