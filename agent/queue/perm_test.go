//go:build unix

package queue

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every file and directory a queue creates is private to the agent's user,
// also under a umask that takes nothing away; a directory that exists already
// keeps its mode. Not parallel: the umask is the whole process's.
func TestStateFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // the operator's, say
		t.Fatal(err)
	}
	dir := filepath.Join(root, "state", "queue", "influx") // parents created too
	o := Options{Dir: dir, MaxBytes: 256 << 10}            // 32 KiB segments

	// Open, append across several segments, acknowledge (meta), close.
	q := openQ(t, o)
	for i := range 40 {
		mustAppend(t, q, makePoints(uint64(i), 10+i, t0.Add(time.Duration(i)*time.Minute)))
	}
	e, _ := q.Oldest()
	if err := q.Ack(e.Seq); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	first, seq := q.segs[0].path, q.segs[0].slots[1]
	q.mu.Unlock()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaName)); err != nil {
		t.Fatalf("no meta file: %v", err)
	}

	// Reopen with a damaged record: the segment is quarantined and a copy of
	// its intact records takes its place.
	flipByte(t, first, int64(seq.off)+recHeaderSize+10)
	q = openQ(t, o)
	if n := stat(q, "quarantined_files"); n != 1 {
		t.Fatalf("quarantined_files = %d, want 1", n)
	}
	mustAppend(t, q, makePoints(99, 5, t0))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	files := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "state"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", rel, got, want)
		}
		if !d.IsDir() {
			files[filepath.Base(filepath.Dir(path))+"/"+kind(d.Name())] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"influx/LOCK", "influx/meta", "influx/segment", "quarantine/segment"} {
		if !files[f] {
			t.Errorf("no %s file was checked (have %v)", f, files)
		}
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("an existing directory changed mode: %v, %v", fi.Mode(), err)
	}
}

// kind names a queue file by what it is: "segment" for a segment, also a
// quarantined one, else its name.
func kind(name string) string {
	if strings.Contains(name, segSuffix) {
		return "segment"
	}
	return name
}

// State written by an older agent — a 0755 queue directory, 0644 segments
// and LOCK — is made private when the queue opens it.
func TestOlderStateIsMadePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "influx")
	o := Options{Dir: dir, MaxBytes: 256 << 10}
	q := openQ(t, o)
	mustAppend(t, q, makePoints(1, 10, t0))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	q = openQ(t, o)
	defer q.Close()
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".tmp") || filepath.Base(path) == metaName {
			return nil // rewritten whole, 0600, at the next save
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v after the queue opened it", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
