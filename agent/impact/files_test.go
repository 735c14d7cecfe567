package impact

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A file last written before the window starts is not read; a file that
// cannot be stat'ed is kept, so that reading it says why.
func TestModifiedSince(t *testing.T) {
	dir := t.TempDir()
	old, fresh, missing := filepath.Join(dir, "old.csv"), filepath.Join(dir, "fresh.csv"), filepath.Join(dir, "missing.csv")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("type,timeLogged\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, start.Add(-time.Second), start.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := ModifiedSince([]string{old, fresh, missing}, start); !slices.Equal(got, []string{fresh, missing}) {
		t.Errorf("ModifiedSince = %v", got)
	}
}
