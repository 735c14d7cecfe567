package acct

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"
)

// Tests of the fileset alone: which known file each path is, with real
// files in two watched directories and no reading (offsets are set by hand
// where a test needs a file to have been read).

type filesetRig struct {
	t          *testing.T
	dirA, dirB string
	fs         *fileset
	now        time.Time
}

func newFilesetRig(t *testing.T) *filesetRig {
	base := t.TempDir()
	r := &filesetRig{t: t, dirA: filepath.Join(base, "pmta"), dirB: filepath.Join(base, "moved"), now: testStart}
	for _, d := range []string{r.dirA, r.dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.fs = newFileset([]string{filepath.Join(r.dirA, "acct-*.csv"), filepath.Join(r.dirB, "acct-*.csv")},
		DefaultConfig().FingerprintSize, discardLogger())
	t.Cleanup(func() { _ = r.fs.closeAll() })
	return r
}

// scan runs discover and returns how many files it added.
func (r *filesetRig) scan() int {
	r.t.Helper()
	added, err := r.fs.discover(r.now)
	if err != nil {
		r.t.Fatalf("discover: %v", err)
	}
	return len(added)
}

// only returns the one entry the fileset holds.
func (r *filesetRig) only() *fileEntry {
	r.t.Helper()
	if len(r.fs.entries) != 1 {
		r.t.Fatalf("%d entries, want 1", len(r.fs.entries))
	}
	return r.fs.entries[0]
}

// readAllOf marks e as read to its current end, as the tailer would.
func readAllOf(e *fileEntry) { e.offset = e.size }

func fileBody(seed uint64, n int) []byte {
	data, _ := records(seed, n, testStart)
	return append([]byte(header23+"\r\n"), data...)
}

func TestFilesetIdentity(t *testing.T) {
	t.Run("a new file is added once", func(t *testing.T) {
		r := newFilesetRig(t)
		appendFile(t, filepath.Join(r.dirA, "acct-1.csv"), fileBody(1, 5))
		if n := r.scan(); n != 1 {
			t.Fatalf("first scan added %d, want 1", n)
		}
		e := r.only()
		if n := r.scan(); n != 0 || r.only() != e || !e.seen {
			t.Fatalf("second scan added %d, entry kept %v, seen %v", n, r.only() == e, e.seen)
		}
	})
	t.Run("a rename keeps the entry and its offset", func(t *testing.T) {
		r := newFilesetRig(t)
		from := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, from, fileBody(1, 5))
		r.scan()
		e := r.only()
		readAllOf(e)
		to := filepath.Join(r.dirB, "acct-1.csv")
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		if n := r.scan(); n != 0 || r.only() != e || e.path != to || e.offset != e.size {
			t.Fatalf("after the move: added %d, same entry %v, path %s, offset %d of %d", n, r.only() == e, e.path, e.offset, e.size)
		}
	})
	t.Run("links are one file", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, fileBody(1, 5))
		if err := os.Symlink(f, filepath.Join(r.dirA, "acct-link.csv")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(f, filepath.Join(r.dirB, "acct-hard.csv")); err != nil {
			t.Fatal(err)
		}
		if n := r.scan(); n != 1 {
			t.Fatalf("added %d files for one file and two links", n)
		}
	})
	t.Run("an empty file waits for its first bytes", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, nil)
		if n := r.scan(); n != 0 {
			t.Fatalf("an empty file was added")
		}
		appendFile(t, f, fileBody(1, 1))
		if n := r.scan(); n != 1 {
			t.Fatalf("added %d once it has bytes, want 1", n)
		}
	})
	t.Run("a truncated file starts again from 0", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, fileBody(1, 20))
		r.scan()
		e := r.only()
		readAllOf(e)
		if err := os.WriteFile(f, fileBody(2, 3), 0o644); err != nil {
			t.Fatal(err)
		}
		r.now = r.now.Add(time.Second)
		r.scan()
		if r.only() != e || e.offset != 0 || r.fs.truncations.Load() != 1 {
			t.Fatalf("same entry %v, offset %d, truncations %d; want the entry at 0 and one truncation",
				r.only() == e, e.offset, r.fs.truncations.Load())
		}
	})
	t.Run("a copy in progress is not a new file", func(t *testing.T) {
		r := newFilesetRig(t)
		body := fileBody(1, 20)
		appendFile(t, filepath.Join(r.dirA, "acct-1.csv"), body)
		r.scan()
		appendFile(t, filepath.Join(r.dirB, "acct-1.csv"), body[:500])
		if n := r.scan(); n != 0 || len(r.fs.entries) != 1 {
			t.Fatalf("added %d for a partial copy; %d entries", n, len(r.fs.entries))
		}
	})
	t.Run("restored entries bind by fingerprint", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		body := fileBody(1, 30)
		appendFile(t, f, body)
		r.scan()
		readAllOf(r.only())
		saved := r.fs.state()
		// Stopped: the file is copied elsewhere (a new inode) and grows.
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
		more, _ := records(2, 3, testStart.Add(time.Minute))
		copied := filepath.Join(r.dirB, "acct-1.csv")
		appendFile(t, copied, append(body, more...))
		r2 := &filesetRig{t: t, fs: newFileset(r.fs.globs, r.fs.fpSize, discardLogger()), now: r.now}
		t.Cleanup(func() { _ = r2.fs.closeAll() })
		if err := r2.fs.restore(saved); err != nil {
			t.Fatal(err)
		}
		if n := r2.scan(); n != 0 {
			t.Fatalf("the copy was taken for a new file")
		}
		e := r2.only()
		if e.path != copied || e.offset != int64(len(body)) {
			t.Fatalf("bound to %s at %d, want %s at %d", e.path, e.offset, copied, len(body))
		}
	})
}

func TestFilesetMissingAndIdle(t *testing.T) {
	t.Run("absent for missingPolls scans is gone", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, fileBody(1, 5))
		r.scan()
		e := r.only()
		_ = e.f.Close()
		e.f = nil // idle-closed: nothing tells it was deleted
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= missingPolls; i++ {
			r.scan()
			if e.seen {
				t.Fatal("a removed file was seen")
			}
			if gone := r.fs.absent(e); gone != (i == missingPolls) {
				t.Fatalf("scan %d: gone = %v", i, gone)
			}
		}
		r.fs.forget(e)
		if len(r.fs.entries) != 0 || r.fs.filesDone.Load() != 1 {
			t.Fatalf("%d entries, files_done %d after forgetting", len(r.fs.entries), r.fs.filesDone.Load())
		}
	})
	t.Run("deleted while held is gone at once", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, fileBody(1, 5))
		r.scan()
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
		r.scan()
		if !r.fs.absent(r.only()) {
			t.Fatal("a deleted file held open is not gone")
		}
	})
	t.Run("a moved file is found before it is missed", func(t *testing.T) {
		r := newFilesetRig(t)
		f := filepath.Join(r.dirA, "acct-1.csv")
		appendFile(t, f, fileBody(1, 5))
		r.scan()
		if err := os.Rename(f, filepath.Join(r.dirB, "acct-1.csv")); err != nil {
			t.Fatal(err)
		}
		r.scan()
		if e := r.only(); !e.seen || e.missing != 0 {
			t.Fatalf("seen %v, missing %d", e.seen, e.missing)
		}
	})
	t.Run("idle descriptors close, busy ones stay", func(t *testing.T) {
		r := newFilesetRig(t)
		appendFile(t, filepath.Join(r.dirA, "acct-1.csv"), fileBody(1, 5))
		appendFile(t, filepath.Join(r.dirA, "acct-2.csv"), fileBody(2, 5))
		r.scan()
		done := r.fs.sorted()[0]
		readAllOf(done)
		r.fs.closeIdle(r.now.Add(idleClose - time.Second))
		if done.f == nil {
			t.Fatal("closed before idleClose")
		}
		r.fs.closeIdle(r.now.Add(idleClose))
		if done.f != nil || r.fs.sorted()[1].f == nil {
			t.Fatalf("after idleClose: read file open %v, unread file open %v", done.f != nil, r.fs.sorted()[1].f != nil)
		}
	})
}

func TestFilesetCutsAndProblems(t *testing.T) {
	r := newFilesetRig(t)
	appendFile(t, filepath.Join(r.dirA, "acct-1.csv"), fileBody(1, 5))
	r.scan()
	e := r.only()
	if cf := r.fs.cutFiles(); len(cf) != 0 {
		t.Fatalf("cut files %v before anything was read", cf)
	}
	readAllOf(e)
	cf := r.fs.cutFiles()
	if len(cf) != 1 || cf[0].Offset != e.size || !cf[0].matches(e.fp) {
		t.Fatalf("cut files %+v, want this file at %d", cf, e.size)
	}
	r.fs.markCut()
	if cf := r.fs.cutFiles(); len(cf) != 0 {
		t.Fatalf("cut files %v right after a cut", cf)
	}

	r.fs.globs = append(r.fs.globs, filepath.Join(r.dirA, "gone", "acct-*.csv"))
	r.scan()
	if p := r.fs.probs.get(); len(p) != 1 || !strings.Contains(p[0], "does not exist") {
		t.Fatalf("problems %q, want the missing directory", p)
	}
}

// A new file that holds only the start of a file found at another path is
// set aside (a copy being written): counted in files_held_as_copies and
// logged once while it stays so, and taken up as a file of its own once it
// holds a record the other does not.
func TestFilesetHoldsCopiesVisibly(t *testing.T) {
	r := newFilesetRig(t)
	rec := logtest.New()
	r.fs.log = rec.Logger()
	body := fileBody(1, 10)
	writeFileT(t, filepath.Join(r.dirA, "acct-1.csv"), body)
	copyPath := filepath.Join(r.dirB, "acct-1.csv")
	writeFileT(t, copyPath, body[:len(body)/2])
	for range 3 {
		if n := r.scan(); n > 1 {
			t.Fatalf("scan added %d files; the partial copy is not a file of its own", n)
		}
		if got := r.fs.held.Load(); got != 1 {
			t.Fatalf("held = %d, want 1", got)
		}
	}
	logged := 0
	for _, l := range rec.Records() {
		if strings.Contains(l.Msg, "holds only the start of another one") {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("logged %d times over three scans, want once", logged)
	}
	// Its own content from here on: a file of its own.
	writeFileT(t, copyPath, fileBody(2, 10))
	if n := r.scan(); n != 1 {
		t.Fatalf("scan added %d files, want the former copy", n)
	}
	if got := r.fs.held.Load(); got != 0 {
		t.Errorf("held = %d after it became a file of its own", got)
	}
}

func writeFileT(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
