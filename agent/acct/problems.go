package acct

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// problemState is what cannot be read, for /readyz and the log. The
// fileset sets it at every scan; Problems reads it from any goroutine.
type problemState struct {
	mu   sync.Mutex
	list []string
}

// Problems returns what keeps the tailer from reading its files — a glob's
// directory that is missing or unreadable, a matched file it may not open —
// one line each, naming the path. /readyz reports them.
func (t *Tailer) Problems() []string { return t.files.probs.get() }

func (ps *problemState) get() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.list)
}

// set replaces the problem list and logs what changed: a new problem as an
// error, a solved one as information.
func (ps *problemState) set(list []string, log *slog.Logger) {
	slices.Sort(list)
	list = slices.Compact(list)
	ps.mu.Lock()
	old := ps.list
	ps.list = list
	ps.mu.Unlock()
	for _, p := range list {
		if !slices.Contains(old, p) {
			log.Error("accounting files cannot be read; records there are not counted until this is fixed", "problem", p)
		}
	}
	for _, p := range old {
		if !slices.Contains(list, p) {
			log.Info("accounting files readable again", "was", p)
		}
	}
}

// CheckFiles reports what keeps the globs' files from being read: each
// glob's directory must exist and be readable, and each file it matches
// must open. check-config runs it; the tailer does the same at every scan.
func CheckFiles(globs []string) []string {
	probs := dirProblems(globs)
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			probs = append(probs, fmt.Sprintf("acct: glob %q: %v", g, err))
			continue
		}
		for _, m := range matches {
			// Stat first: a FIFO or a device matched by mistake would
			// block an open. The tailer passes over them too.
			fi, err := os.Stat(m)
			if err != nil {
				probs = append(probs, fileProblem(m, err))
				continue
			}
			if !fi.Mode().IsRegular() {
				continue
			}
			f, err := os.Open(m)
			if err != nil {
				probs = append(probs, fileProblem(m, err))
				continue
			}
			_ = f.Close()
		}
	}
	slices.Sort(probs)
	return slices.Compact(probs)
}

// dirProblems checks the directory of each glob whose directory part has
// no pattern characters (filepath.Glob says nothing about a directory it
// cannot read: it just finds no file).
func dirProblems(globs []string) []string {
	var probs []string
	for _, g := range globs {
		dir := filepath.Dir(g)
		if strings.ContainsAny(dir, `*?[\`) {
			continue
		}
		f, err := os.Open(dir)
		if err == nil {
			_, err = f.Readdirnames(1)
			_ = f.Close()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			probs = append(probs, fmt.Sprintf("acct: directory %s does not exist (glob %s)", dir, g))
		default:
			probs = append(probs, fmt.Sprintf("acct: cannot read directory %s: %v", dir, unwrapPath(err)))
		}
	}
	return probs
}

func fileProblem(path string, err error) string {
	return fmt.Sprintf("acct: cannot read %s: %v", path, unwrapPath(err))
}

// unwrapPath drops the *fs.PathError wrapper, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
