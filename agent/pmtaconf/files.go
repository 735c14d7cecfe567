package pmtaconf

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File is one file of a configuration and a hash of its content.
type File struct {
	Path string
	Sum  [sha256.Size]byte
}

// Files returns the files that Load(path) reads — the main file and every
// file its includes name, recursively, in reading order — each with a
// SHA-256 of its content. Two results are equal (slices.Equal) exactly when
// Load would read the same bytes from the same files: an edit in an
// included file, a file that a pattern include now matches, an include
// added or removed all show. It follows includes as Load does (relative to
// the including file, patterns in name order, a pattern matching nothing
// is no error) and fails where Load would fail to read a file; it does not
// parse anything else, so a file Load refuses may still hash.
func Files(path string) ([]File, error) {
	var out []File
	var reading []string
	var read func(path string, depth int) error
	read = func(path string, depth int) error {
		if depth > maxIncludeDepth {
			return fmt.Errorf("%s: includes nest deeper than %d", path, maxIncludeDepth)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		if slices.Contains(reading, abs) {
			return fmt.Errorf("%s: includes itself (through %s)", path, strings.Join(reading, " → "))
		}
		reading = append(reading, abs)
		defer func() { reading = reading[:len(reading)-1] }()
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read PowerMTA config: %w", err)
		}
		out = append(out, File{Path: path, Sum: sha256.Sum256(data)})
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), maxLine)
		line := 0
		for sc.Scan() {
			line++
			words, err := split(sc.Text())
			if err != nil || len(words) != 2 || !strings.EqualFold(words[0], "include") {
				continue // Load reports what is wrong with the line
			}
			pattern := words[1]
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(filepath.Dir(path), pattern)
			}
			matches, err := filepath.Glob(pattern)
			if err != nil {
				return fmt.Errorf("%s:%d: include %q: %w", path, line, pattern, err)
			}
			if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
				return fmt.Errorf("%s:%d: include %s: %w", path, line, pattern, os.ErrNotExist)
			}
			slices.Sort(matches)
			for _, m := range matches {
				if err := read(m, depth+1); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: line %d: %w", path, line+1, err)
		}
		return nil
	}
	if err := read(path, 0); err != nil {
		return nil, err
	}
	return out, nil
}
