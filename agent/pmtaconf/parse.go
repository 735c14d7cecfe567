// Package pmtaconf reads PowerMTA's own configuration file (/etc/pmta/config)
// and derives from it what the agent needs: where the management API
// listens and how to reach it, the accounting files and what they hold, the
// vmtas' source IPs and pools, the operator's domain macros — and what in it
// is risky. It only reads: nothing here changes PowerMTA's configuration.
//
// The syntax (PowerMTA 5.0 User's Guide, chapter 3): one directive per line,
// "name value…"; "#" starts a comment where a word could start; values may
// be double-quoted; "<name arg…>" opens a block that "</name>" closes, and
// blocks nest; "include PATH" reads another file (a pattern may name
// several) in place.
package pmtaconf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Pos is where a directive or block is written.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Directive is one "name value…" line.
type Directive struct {
	Name string
	Args []string
	Pos  Pos
}

// Value returns the arguments joined by one space.
func (d Directive) Value() string { return strings.Join(d.Args, " ") }

// Block is a "<name arg…>" … "</name>" section; the file itself is the
// root block, whose Name is empty.
type Block struct {
	Name       string
	Args       []string
	Pos        Pos
	Directives []Directive
	Blocks     []*Block
}

// Arg returns the block's arguments joined by one space: the path of an
// <acct-file>, the name of a <virtual-mta>.
func (b *Block) Arg() string { return strings.Join(b.Args, " ") }

// Last returns the last directive name of the block itself (PowerMTA
// takes the last of a repeated single-valued directive) and whether there is
// one.
func (b *Block) Last(name string) (Directive, bool) {
	for i := len(b.Directives) - 1; i >= 0; i-- {
		if b.Directives[i].Name == name {
			return b.Directives[i], true
		}
	}
	return Directive{}, false
}

// All returns every directive name of the block itself, in order.
func (b *Block) All(name string) []Directive {
	var out []Directive
	for _, d := range b.Directives {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// Children returns the blocks name directly inside b, in order.
func (b *Block) Children(name string) []*Block {
	var out []*Block
	for _, c := range b.Blocks {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// maxLine bounds one line and maxIncludeDepth the nesting of includes, so
// that a damaged or looping file is an error, not a hang.
const (
	maxLine         = 1 << 20
	maxIncludeDepth = 16
)

// Load parses the configuration file at path and the files it includes.
// Directive and block names are lower-cased, as PowerMTA matches them
// without regard to case; values are kept as written.
func Load(path string) (*Block, error) {
	root := &Block{Pos: Pos{File: path}}
	p := parser{stack: []*Block{root}}
	if err := p.file(path, 0); err != nil {
		return nil, err
	}
	if open := p.stack[len(p.stack)-1]; open != root {
		return nil, fmt.Errorf("%s: <%s> is never closed", open.Pos, open.Name)
	}
	return root, nil
}

type parser struct {
	stack   []*Block // the open blocks, the root first
	reading []string // the files being read, for include loops
}

func (p *parser) file(path string, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: includes nest deeper than %d", path, maxIncludeDepth)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if slices.Contains(p.reading, abs) {
		return fmt.Errorf("%s: includes itself (through %s)", path, strings.Join(p.reading, " → "))
	}
	p.reading = append(p.reading, abs)
	defer func() { p.reading = p.reading[:len(p.reading)-1] }()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read PowerMTA config: %w", err)
	}
	defer f.Close()
	return p.read(f, path, depth)
}

func (p *parser) read(r io.Reader, name string, depth int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		pos := Pos{File: name, Line: line}
		words, err := split(sc.Text())
		if err != nil {
			return fmt.Errorf("%s: %w", pos, err)
		}
		if len(words) == 0 {
			continue
		}
		first := words[0]
		switch {
		case strings.HasPrefix(first, "</"):
			tag := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.Join(words, " "), "</"), ">"))
			top := p.stack[len(p.stack)-1]
			if len(p.stack) == 1 {
				return fmt.Errorf("%s: </%s> closes no block", pos, tag)
			}
			if tag != top.Name {
				return fmt.Errorf("%s: </%s> closes <%s> of line %d", pos, tag, top.Name, top.Pos.Line)
			}
			p.stack = p.stack[:len(p.stack)-1]
		case strings.HasPrefix(first, "<"):
			text := strings.Join(words, " ")
			if !strings.HasSuffix(text, ">") {
				return fmt.Errorf("%s: %q opens a block without a closing '>'", pos, text)
			}
			// Re-split inside the brackets, so that "<acct-file |/usr/bin/x -a>"
			// keeps its arguments.
			inner := strings.TrimSuffix(strings.TrimPrefix(text, "<"), ">")
			parts, _ := split(inner)
			if len(parts) == 0 {
				return fmt.Errorf("%s: an empty block name", pos)
			}
			b := &Block{Name: strings.ToLower(parts[0]), Args: parts[1:], Pos: pos}
			top := p.stack[len(p.stack)-1]
			top.Blocks = append(top.Blocks, b)
			p.stack = append(p.stack, b)
		case strings.EqualFold(first, "include"):
			if len(words) != 2 {
				return fmt.Errorf("%s: include wants one path", pos)
			}
			if err := p.include(words[1], name, depth); err != nil {
				return fmt.Errorf("%s: %w", pos, err)
			}
		default:
			top := p.stack[len(p.stack)-1]
			top.Directives = append(top.Directives, Directive{Name: strings.ToLower(first), Args: words[1:], Pos: pos})
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", name, line+1, err)
	}
	return nil
}

// include reads the files a pattern names, relative to the including file's
// directory, in name order; a pattern that matches nothing is no error (an
// empty conf.d), a plain path that does not exist is.
func (p *parser) include(pattern, from string, depth int) error {
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(from), pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return fmt.Errorf("include %q: %w", pattern, err)
	}
	if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
		return fmt.Errorf("include %s: %w", pattern, os.ErrNotExist)
	}
	slices.Sort(matches)
	for _, m := range matches {
		if err := p.file(m, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// split cuts a line into words: blanks separate them, double quotes group
// (a backslash escapes a quote inside), and "#" where a word starts begins
// a comment.
func split(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
			i++
			w.WriteByte(line[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '"':
			quoted, inWord = true, true
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, nil
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("a quote is never closed")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
