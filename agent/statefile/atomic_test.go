package statefile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// dirNames lists dir, so that a test can see leftover temporary files.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteAtomic(t *testing.T) {
	t.Run("creates and replaces", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		for _, content := range []string{`{"v":1}`, `{"v":2,"longer":true}`, "short"} {
			if err := WriteAtomic(path, []byte(content), 0o600); err != nil {
				t.Fatalf("write %q: %v", content, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Fatalf("read back %q, %v; want %q", got, err, content)
			}
			if names := dirNames(t, dir); len(names) != 1 || names[0] != "state.json" {
				t.Fatalf("directory holds %q, want only state.json", names)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("mode %v, want 0600", m)
		}
	})

	t.Run("mode is perm less the umask", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "meta")
		if err := WriteAtomic(path, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&^0o640 != 0 || m&0o600 != 0o600 {
			t.Errorf("mode %v, want 0640 less the umask", m)
		}
	})

	t.Run("missing directory", func(t *testing.T) {
		dir := t.TempDir()
		err := WriteAtomic(filepath.Join(dir, "no", "such", "file"), []byte("x"), 0o600)
		var pe *fs.PathError
		if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v (%T), want a *fs.PathError for a missing file", err, err)
		}
		var ds *DirSyncError
		if errors.As(err, &ds) {
			t.Errorf("a failed create reported as a directory sync failure: %v", err)
		}
	})

	t.Run("failed rename leaves no temporary file", func(t *testing.T) {
		dir := t.TempDir()
		// A directory in the way: renaming a file over it fails.
		target := filepath.Join(dir, "busy")
		if err := os.Mkdir(target, 0o700); err != nil {
			t.Fatal(err)
		}
		err := WriteAtomic(target, []byte("x"), 0o600)
		var le *os.LinkError
		if !errors.As(err, &le) {
			t.Fatalf("error %v (%T), want the rename's *os.LinkError", err, err)
		}
		if names := dirNames(t, dir); len(names) != 1 || names[0] != "busy" {
			t.Errorf("directory holds %q after the failure, want only busy", names)
		}
	})

	t.Run("concurrent writers", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state")
		var contents [][]byte
		for i := range 8 {
			contents = append(contents, bytes.Repeat([]byte{byte('a' + i)}, 64<<10))
		}
		var wg sync.WaitGroup
		for _, c := range contents {
			wg.Go(func() {
				if err := WriteAtomic(path, c, 0o600); err != nil {
					t.Errorf("write: %v", err)
				}
			})
		}
		wg.Wait()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole := false
		for _, c := range contents {
			whole = whole || bytes.Equal(got, c)
		}
		if !whole {
			t.Errorf("content of %d bytes is no single writer's whole content", len(got))
		}
		if names := dirNames(t, dir); len(names) != 1 {
			t.Errorf("directory holds %q, want only state", names)
		}
	})
}

// TestTempFileName checks what a directory scan relies on to recognise the
// leftover of an interrupted write: same directory, hidden, ".tmp" at the end.
func TestTempFileName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta")
	seen := map[string]bool{}
	for range 20 {
		name, f, err := createTemp(path, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if filepath.Dir(name) != dir {
			t.Errorf("temporary file %s is not in %s", name, dir)
		}
		base := filepath.Base(name)
		if !strings.HasPrefix(base, ".meta.") || !strings.HasSuffix(base, ".tmp") {
			t.Errorf("temporary file %s, want .meta.<random>.tmp", base)
		}
		if seen[name] {
			t.Errorf("temporary file %s handed out twice", name)
		}
		seen[name] = true
	}
}

func TestDirSyncError(t *testing.T) {
	cause := &fs.PathError{Op: "sync", Path: "/state", Err: syscall.EIO}
	var err error = &DirSyncError{Err: cause}
	if err.Error() != cause.Error() {
		t.Errorf("text %q, want the cause's %q", err, cause)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("%v does not unwrap to its cause", err)
	}
	wrapped := fmt.Errorf("save: %w", err)
	var ds *DirSyncError
	if !errors.As(wrapped, &ds) || ds.Err != cause {
		t.Errorf("errors.As through a wrap: %v", ds)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir of a directory: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want not exist", err)
	}
}
