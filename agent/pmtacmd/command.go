package pmtacmd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLineBytes bounds a command line. PowerMTA's longest documented
// commands (delete or list with every filter) fit in a few hundred bytes; a
// domain is at most 253.
const MaxLineBytes = 1024

// ErrInvalid is wrapped by every error about the text of a command line:
// what Parse refuses, what Run refuses to send, what Validate finds. A
// caller tells "this command is wrong" from "PowerMTA refused it" with
// errors.Is.
var ErrInvalid = errors.New("invalid command")

// Command is one PowerMTA command line without the leading "pmta": the
// verb ("pause", "schedule", "show") and its words, options ("--maxitems=5")
// included, each as PowerMTA's CLI would pass it on (quotes removed).
type Command struct {
	Verb string
	Args []string
}

// Parse reads a command line. Words are separated by spaces or tabs; a
// double-quoted part belongs to the word around it and may hold spaces
// ("--orig=\"a b\"" is one word). There is no escape character, so no word
// holds a double quote. Refused (ErrInvalid): an empty line, an unclosed
// quote, more than MaxLineBytes, invalid UTF-8, and any control or format
// character — NUL, newline, carriage return, escape, DEL, C1, U+2028/9,
// bidirectional and zero-width marks — other than a tab between words.
func Parse(line string) (Command, error) {
	if len(line) > MaxLineBytes {
		return Command{}, invalid("command line: %d bytes; at most %d", len(line), MaxLineBytes)
	}
	if !utf8.ValidString(line) {
		return Command{}, invalid("command line: not valid UTF-8")
	}
	var (
		words           []string
		cur             strings.Builder
		inWord, inQuote bool
	)
	for i, r := range line {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case forbidden(r):
			return Command{}, invalid("command line: %s at byte %d", describe(r), i)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		return Command{}, invalid("command line: a double quote is not closed")
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return Command{}, invalid("command line: empty")
	}
	c := Command{Verb: words[0]}
	if len(words) > 1 {
		c.Args = words[1:]
	}
	if c.Verb == "" {
		return Command{}, invalid("command line: the verb is empty")
	}
	return c, nil
}

// String returns the command line: the words joined by spaces, a word that
// is empty or holds a blank in double quotes. Parse(c.String()) gives c back
// for every Command Parse returns.
func (c Command) String() string {
	var b strings.Builder
	for i, w := range c.words() {
		if i > 0 {
			b.WriteByte(' ')
		}
		if w == "" || strings.ContainsAny(w, " \t") {
			b.WriteByte('"')
			b.WriteString(w)
			b.WriteByte('"')
			continue
		}
		b.WriteString(w)
	}
	return b.String()
}

// MarshalText writes the command line, so that a Command is a string in
// JSON and YAML.
func (c Command) MarshalText() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

// UnmarshalText parses a command line (see Parse).
func (c *Command) UnmarshalText(b []byte) error {
	parsed, err := Parse(string(b))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// Name returns what the command does, in lower case, as an allow-list would
// name it: the verb, followed by its object for the verbs that take one —
// "pause queue", "resume job", "show status", "set queue", "disable
// source", "rotate acct", "reset counters" — and the verb alone otherwise:
// "schedule", "list", "delete". The seed document's "retry queue" is
// "retry queue" too.
func (c Command) Name() string {
	verb := strings.ToLower(c.Verb)
	switch verb {
	case "pause", "resume", "set", "show", "disable", "enable", "rotate", "reset", "retry":
		if len(c.Args) > 0 && !strings.HasPrefix(c.Args[0], "-") {
			return verb + " " + strings.ToLower(c.Args[0])
		}
	}
	return verb
}

// words returns the verb and the arguments in one slice.
func (c Command) words() []string {
	return append([]string{c.Verb}, c.Args...)
}

// check reports what makes a Command built in code unsendable: whatever
// Parse would not have returned.
func (c Command) check() error {
	if c.Verb == "" {
		return invalid("the verb is empty")
	}
	n := 0
	for _, w := range c.words() {
		n += len(w) + 1
		if !utf8.ValidString(w) {
			return invalid("word %q is not valid UTF-8", w)
		}
		for _, r := range w {
			switch {
			case r == '"':
				return invalid("word %q holds a double quote", w)
			case r == '\t' || forbidden(r):
				return invalid("word %q holds %s", w, describe(r))
			}
		}
	}
	if n-1 > MaxLineBytes {
		return invalid("the line is %d bytes; at most %d", n-1, MaxLineBytes)
	}
	return nil
}

// forbidden tells the characters no command line holds: control characters
// (C0, DEL, C1), format characters (bidirectional overrides, zero-width
// marks, which make a logged command read differently from what was sent)
// and the Unicode line and paragraph separators.
func forbidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// describe names a forbidden character for an error message.
func describe(r rune) string {
	switch r {
	case 0:
		return "a NUL character"
	case '\n', '\r', '\u2028', '\u2029', '\u0085':
		return fmt.Sprintf("a line break (%U): one command a line", r)
	}
	return fmt.Sprintf("a control character (%U)", r)
}

// invalidError is an ErrInvalid that says only what is wrong.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}
