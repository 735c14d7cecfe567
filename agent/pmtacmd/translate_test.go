package pmtacmd

import (
	"slices"
	"strings"
	"testing"
)

func TestTranslate(t *testing.T) {
	tests := []struct {
		dialect, in, want string
		why               string // part of the note; "" = no note
	}{
		// The seed document's verbs, as the issue names them.
		{"pmta", "retry queue gmail.com", "schedule gmail.com/*", "no retry verb"},
		{"pmta", "pause queue outlook.com", "pause queue outlook.com/*", "{default}"},
		{"pmta", "resume queue outlook.com", "resume queue outlook.com/*", "{default}"},
		{"pmta", "show queue --age-min=1h", "list --queue=*/* --older-than=1h", "--older-than"},
		// Their variations.
		{"", "retry queue gmail.com", "schedule gmail.com/*", "no retry verb"}, // "" is the default dialect, pmta
		{"PMTA", "Retry Queue gmail.com", "schedule gmail.com/*", "no retry verb"},
		{"pmta", "retry queue gmail.com/vmta-gm-011", "schedule gmail.com/vmta-gm-011", "no retry verb"},
		{"pmta", "PAUSE QUEUE outlook.com", "pause queue outlook.com/*", "{default}"},
		{"pmta", "pause queue *", "pause queue */*", "{default}"},
		{"pmta", "show queue gmail.com --age-min 2h --maxitems=10", "list --queue=gmail.com/* --older-than=2h --maxitems=10", "--older-than"},
		{"pmta", "show queues --age-min=30m", "list --queue=*/* --older-than=30m", "--older-than"},
		{"pmta", "show queue", "show queues", "queues"},
		{"pmta", "show queue --paused=yes", "show queues --paused=yes", "queues"},
		{"pmta", "schedule gmail.com", "schedule gmail.com/*", "{default}"},
		{"pmta", "schedule --retry-recipients gmail.com", "schedule --retry-recipients gmail.com/*", "{default}"},
		{"pmta", "list --queue=gmail.com --older-than=1h", "list --queue=gmail.com/* --older-than=1h", "{default}"},
		// PowerMTA's own syntax passes as written.
		{"pmta", "pause queue outlook.com/*", "pause queue outlook.com/*", ""},
		{"pmta", "pause queue outlook.com/vmta-ms-031", "pause queue outlook.com/vmta-ms-031", ""},
		{"pmta", "schedule */*", "schedule */*", ""},
		{"pmta", "show queues", "show queues", ""},
		{"pmta", "show status", "show status", ""},
		{"pmta", "list --queue=*/* --older-than=1h", "list --queue=*/* --older-than=1h", ""},
		{"pmta", "delete --queue=gmail.com", "delete --queue=gmail.com", ""},                     // never widened
		{"pmta", "set queue --mode=backoff gmail.com", "set queue --mode=backoff gmail.com", ""}, // never widened
		{"pmta", "disable source 203.0.113.5 gmail.com", "disable source 203.0.113.5 gmail.com", ""},
		{"pmta", "reload", "reload", ""},
		{"pmta", "retry queue", "retry queue", ""},                                                                 // nothing to retry: PowerMTA says so
		{"pmta", "show queue a.example b.example --age-min=1h", "show queue a.example b.example --age-min=1h", ""}, // not the seed's form
		// The seed proxy takes the seed's words.
		{"seed", "retry queue gmail.com", "retry queue gmail.com", ""},
		{"seed", "pause queue outlook.com", "pause queue outlook.com", ""},
		{"seed", "show queue --age-min=1h", "show queue --age-min=1h", ""},
	}
	for _, tc := range tests {
		in, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		before := slices.Clone(in.Args)
		out, note := Translate(tc.dialect, in)
		if out.String() != tc.want {
			t.Errorf("Translate(%s, %q) = %q, want %q", tc.dialect, tc.in, out, tc.want)
		}
		switch {
		case tc.why == "" && note != "":
			t.Errorf("Translate(%s, %q) notes %q", tc.dialect, tc.in, note)
		case tc.why != "" && !strings.Contains(note, tc.why):
			t.Errorf("Translate(%s, %q) note %q does not say %q", tc.dialect, tc.in, note, tc.why)
		}
		if !slices.Equal(in.Args, before) {
			t.Errorf("Translate changed its input: %q", in.Args)
		}
	}
}

// The note names both commands as an operator would type them, and gives
// only the reasons that apply.
func TestTranslateNote(t *testing.T) {
	c, _ := Parse("retry queue gmail.com")
	_, note := Translate("pmta", c)
	if want := `"retry queue gmail.com" is "schedule gmail.com/*" on PowerMTA: PowerMTA has no retry verb`; !strings.HasPrefix(note, want) || !strings.Contains(note, "{default}") {
		t.Errorf("note %q, want it to start with %q and explain /*", note, want)
	}
	c, _ = Parse("retry queue gmail.com/vmta-gm-011")
	if _, note := Translate("pmta", c); strings.Contains(note, "{default}") {
		t.Errorf("note %q explains a /* that was not added", note)
	}
}

// What Translate makes of a valid seed command is valid PowerMTA.
func TestTranslatedCommandsValidate(t *testing.T) {
	for _, line := range []string{"retry queue gmail.com", "pause queue outlook.com", "resume queue outlook.com",
		"show queue --age-min=1h", "show queue gmail.com --age-min=2h --maxitems=5", "show queue"} {
		c, _ := Parse(line)
		out, _ := Translate("pmta", c)
		if err := out.Validate(); err != nil {
			t.Errorf("%q → %q: %v", line, out, err)
		}
	}
}
