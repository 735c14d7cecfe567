package confwatch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"
)

// TestJournal: with a StateDir each change reported is appended to the
// journal, secrets masked, and LatestChange returns the newest.
func TestJournal(t *testing.T) {
	r := newRig(t, map[string]string{"config": mainConfig + "http-api-key 0123456789abcdef0123456789abcdef\n", "vmtas.inc": vmtas})
	state := t.TempDir()
	w, err := New(Config{Path: filepath.Join(r.dir, "config"), StateDir: state}, logtest.New().Logger())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	w.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	r.w = w
	r.check()
	if _, ok, err := LatestChange(state); ok || err != nil {
		t.Fatalf("journal before any change: ok %v, err %v", ok, err)
	}
	r.write("config", mainConfig+"http-api-key fedcba9876543210fedcba9876543210\n")
	r.check()
	r.write("vmtas.inc", strings.Replace(vmtas, "<virtual-mta-pool pool-gmail>", "<virtual-mta-pool pool-gmail>\n    max-smtp-out 20", 1))
	r.check()
	data, err := os.ReadFile(JournalPath(state))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("0123456789abcdef")) || bytes.Contains(data, []byte("fedcba98")) {
		t.Errorf("the journal holds a secret:\n%s", data)
	}
	if n := bytes.Count(data, []byte{'\n'}); n != 2 {
		t.Errorf("journal has %d lines, want 2:\n%s", n, data)
	}
	e, ok, err := LatestChange(state)
	if err != nil || !ok {
		t.Fatalf("LatestChange: ok %v, err %v", ok, err)
	}
	if e.Block != "<virtual-mta-pool pool-gmail>" || e.Directive != "max-smtp-out" || e.Line == 0 ||
		!strings.HasSuffix(e.File, "vmtas.inc") || !e.Time.Equal(clock) {
		t.Errorf("latest change %+v", e)
	}
}

// TestJournalBounded: past journalKeep lines the journal keeps its newest;
// a torn last line is skipped and does not join the next entry.
func TestJournalBounded(t *testing.T) {
	path := JournalPath(t.TempDir())
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	entry := func(i int) Entry {
		return Entry{Time: base.Add(time.Duration(i) * time.Second), Change: fmt.Sprintf("change %d", i)}
	}
	for i := range 12 {
		if err := appendJournal(path, []Entry{entry(i)}, 10); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 10 || !strings.Contains(lines[0], "change 2") || !strings.Contains(lines[9], "change 11") {
		t.Fatalf("bounded journal:\n%s", data)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2024-01-15T11:00:00Z","chan`)
	f.Close()
	e, ok, err := LatestChange(filepath.Dir(filepath.Dir(path)))
	if err != nil || !ok || e.Change != "change 11" {
		t.Fatalf("after a torn line: %+v %v %v", e, ok, err)
	}
	if err := appendJournal(path, []Entry{entry(20)}, 100); err != nil {
		t.Fatal(err)
	}
	e, _, _ = LatestChange(filepath.Dir(filepath.Dir(path)))
	if e.Change != "change 20" {
		t.Fatalf("after a torn line and an append: %+v", e)
	}
}
