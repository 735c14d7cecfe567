package confwatch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// The journal keeps the changes the watcher reported, one JSON object a
// line, so that a later command (pmta-agent impact) can find the latest one
// without a store to query. It holds the last journalKeep lines: past that
// it is rewritten, atomically, with its newest journalKeep.
const (
	journalDir  = "pmta_config"
	journalName = "changes.jsonl"
	journalKeep = 1000
)

// JournalPath is the journal's path under the agent's state_dir.
func JournalPath(stateDir string) string {
	return filepath.Join(stateDir, journalDir, journalName)
}

// Entry is one change in the journal: what the config_change event says,
// secrets already masked by pmtaconf.Change.String.
type Entry struct {
	Time      time.Time `json:"time"`
	Block     string    `json:"block,omitempty"`
	Directive string    `json:"directive,omitempty"`
	Key       string    `json:"key,omitempty"` // of a keyed directive: domain-macro's macro
	Change    string    `json:"change"`
	File      string    `json:"file,omitempty"`
	Line      int       `json:"line,omitempty"`
}

func entryOf(c pmtaconf.Change, text string, t time.Time) Entry {
	return Entry{Time: t.UTC(), Block: bound(c.Block), Directive: c.Directive, Key: bound(c.Key), Change: text,
		File: bound(c.Pos.File), Line: c.Pos.Line}
}

// appendJournal adds entries to the journal at path, rewriting it with its
// newest keep lines when it would hold more. A line torn by a crash is
// left where it is and skipped by readers; the next one starts on a line
// of its own.
func appendJournal(path string, entries []Entry, keep int) error {
	if len(entries) == 0 {
		return nil
	}
	var add bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("change journal: %w", err)
		}
		add.Write(b)
		add.WriteByte('\n')
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("change journal: %w", err)
	}
	torn := len(old) > 0 && old[len(old)-1] != '\n'
	if torn {
		old = append(old, '\n') // a torn last line stays alone on its line
	}
	if bytes.Count(old, []byte{'\n'})+len(entries) > keep {
		lines := bytes.SplitAfter(append(old, add.Bytes()...), []byte{'\n'})
		lines = lines[:len(lines)-1] // the empty piece after the last newline
		lines = lines[max(0, len(lines)-keep):]
		return wrapJournal(statefile.WriteAtomic(path, bytes.Join(lines, nil), 0o600))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("change journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("change journal: %w", err)
	}
	data := add.Bytes()
	if torn {
		data = append([]byte{'\n'}, data...)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return wrapJournal(errors.Join(err, f.Close()))
}

func wrapJournal(err error) error {
	if err != nil {
		return fmt.Errorf("change journal: %w", err)
	}
	return nil
}

// LatestChange returns the newest entry of the journal under stateDir;
// ok is false when there is none (no journal, or no whole line in it).
func LatestChange(stateDir string) (e Entry, ok bool, err error) {
	f, err := os.Open(JournalPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("change journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var x Entry
		if json.Unmarshal(sc.Bytes(), &x) == nil && !x.Time.IsZero() {
			// Lines are appended in time order; a later line wins.
			e, ok = x, true
		}
	}
	if err := sc.Err(); err != nil {
		return Entry{}, false, fmt.Errorf("change journal: %w", err)
	}
	return e, ok, nil
}
