package pmtacmd

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long := "show " + strings.Repeat("a", MaxLineBytes-len("show "))
	tests := []struct {
		line string
		want []string // verb then args
	}{
		{"pause queue gmail.com/*", []string{"pause", "queue", "gmail.com/*"}},
		{"  show   queues\t--maxitems=5  ", []string{"show", "queues", "--maxitems=5"}},
		{"show status", []string{"show", "status"}},
		{`delete --orig="a b" --queue=x.example/*`, []string{"delete", "--orig=a b", "--queue=x.example/*"}},
		{`"show" "status"`, []string{"show", "status"}},
		{`pause "" x`, []string{"pause", "", "x"}},
		{`list "--queue=*/*"`, []string{"list", "--queue=*/*"}},
		{`a"b c"d`, []string{"ab cd"}},
		{"show queue --age-min=1h", []string{"show", "queue", "--age-min=1h"}},
		{"show münchen", []string{"show", "münchen"}}, // printable Unicode is text
		{long, []string{"show", long[len("show "):]}},
	}
	for _, tc := range tests {
		c, err := Parse(tc.line)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.line, err)
			continue
		}
		if got := c.words(); !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %q, want %q", tc.line, got, tc.want)
		}
		back, err := Parse(c.String())
		if err != nil || back.Verb != c.Verb || !slices.Equal(back.Args, c.Args) {
			t.Errorf("Parse(%q).String() = %q parses to %q, %v", tc.line, c.String(), back.words(), err)
		}
	}
}

func TestParseRefusesHostileLines(t *testing.T) {
	tests := map[string]string{
		"empty":                  "",
		"blank":                  " \t ",
		"empty verb":             `"" status`,
		"newline":                "pause queue x/*\nreload",
		"carriage return":        "pause queue x/*\r",
		"NUL":                    "pause queue x\x00/*",
		"escape":                 "show \x1b[31mstatus",
		"DEL":                    "show status\x7f",
		"C1 (NEL)":               "show status\u0085",
		"line separator":         "show status\u2028reload",
		"right-to-left override": "pause queue gmail.com\u202e*/",
		"zero-width space":       "pause queue gmail\u200b.com",
		"byte-order mark":        "\ufeffshow status",
		"tab inside quotes":      "delete \"--orig=a\tb\"",
		"invalid UTF-8":          "show \xff",
		"unclosed quote":         `show "status`,
		"over 1 KiB":             "show " + strings.Repeat("a", MaxLineBytes),
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse(line)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", line, c.words())
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if strings.ContainsAny(err.Error(), "\x00\n\r\x1b\u202e") {
				t.Errorf("the error repeats the hostile character: %q", err)
			}
		})
	}
}

// A Command built in code (a relay fills in an alert's labels) is checked
// as Parse would check the line.
func TestCheckRefusesWhatParseWould(t *testing.T) {
	bad := []Command{
		{},
		{Verb: "pause", Args: []string{"queue", "a\nb"}},
		{Verb: "pause", Args: []string{"queue", `a"b`}},
		{Verb: "pause", Args: []string{"queue", "a\tb"}},
		{Verb: "pause", Args: []string{"queue", "\xff"}},
		{Verb: "show", Args: []string{strings.Repeat("a", MaxLineBytes)}},
	}
	for _, c := range bad {
		if err := c.check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("check(%q) = %v, want ErrInvalid", c.words(), err)
		}
		if _, err := c.MarshalText(); err == nil {
			t.Errorf("MarshalText(%q) succeeded", c.words())
		}
	}
	if err := (Command{Verb: "pause", Args: []string{"queue", "a b/*"}}).check(); err != nil {
		t.Errorf("a word with a space is sendable (quoted): %v", err)
	}
}

func TestName(t *testing.T) {
	tests := map[string]string{
		"pause queue x/*":              "pause queue",
		"PAUSE Queue x/*":              "pause queue",
		"resume job 42":                "resume job",
		"show status":                  "show status",
		"show --maxitems=3 queues":     "show",
		"schedule gmail.com/*":         "schedule",
		"list --queue=*/*":             "list",
		"set queue --mode=backoff x/*": "set queue",
		"disable source 1.2.3.4 x/*":   "disable source",
		"reset counters":               "reset counters",
		"retry queue gmail.com":        "retry queue",
		"reload":                       "reload",
	}
	for line, want := range tests {
		c, err := Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Name(); got != want {
			t.Errorf("Name(%q) = %q, want %q", line, got, want)
		}
	}
}

// In JSON (and YAML) a Command is its command line.
func TestCommandJSON(t *testing.T) {
	c := Command{Verb: "delete", Args: []string{"--orig=a b", "--queue=x/*"}}
	b, err := json.Marshal(map[string]Command{"c": c})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"c":"delete \"--orig=a b\" --queue=x/*"}` {
		t.Errorf("marshalled %s", b)
	}
	var back map[string]Command
	if err := json.Unmarshal(b, &back); err != nil || back["c"].String() != c.String() {
		t.Errorf("unmarshalled %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`"pause queue x\n"`), new(Command)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a newline unmarshalled: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"pause queue gmail.com/*", `delete --orig="a b"`, `a"b`, "show\tstatus", "x\x00", `""`, "\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("Parse(%q) returned an unsendable command: %v", line, err)
		}
		back, err := Parse(c.String())
		if err != nil || back.Verb != c.Verb || !slices.Equal(back.Args, c.Args) {
			t.Fatalf("Parse(%q) = %q; String %q parses to %q, %v", line, c.words(), c.String(), back.words(), err)
		}
		if len(c.String()) > MaxLineBytes {
			t.Fatalf("String of %q is %d bytes", line, len(c.String()))
		}
	})
}
