package pmtacmd

import (
	"errors"
	"strings"
	"testing"
)

func TestValidDomain(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 253-3*64) // 253 characters
	if len(name253) != 253 {
		t.Fatalf("test name is %d characters", len(name253))
	}
	good := []string{
		"gmail.com", "GMAIL.COM", "mail-full.example.net", "123.example", "localhost",
		"*", "*.gmail.com", "yahoo.*", "hotmail.co?", "*-corp.de",
		"xn--mnchen-3ya.de", "XN--MNCHEN-3YA.DE", // münchen.de in punycode
		label63 + ".com", name253,
	}
	for _, s := range good {
		if err := ValidDomain(s); err != nil {
			t.Errorf("ValidDomain(%q): %v", s, err)
		}
	}
	bad := map[string]string{
		"":                              "empty",
		".":                             "dot",
		"gmail.com.":                    "dot",
		".gmail.com":                    "dot",
		"a..b":                          "empty label",
		"-a.com":                        "hyphen",
		"a-.com":                        "hyphen",
		"a_b.com":                       "holds",
		"gmail.com/x":                   "holds",
		"a b.com":                       "holds",
		"$(reboot).com":                 "holds",
		"gmail.com;reload":              "holds",
		"gmail.com\x00":                 "holds",
		"münchen.de":                    "xn--mnchen-3ya.de",
		"\u202egmail.com":               "ASCII",
		"ab--cd.com":                    "reserved",
		"xn--a.com":                     "punycode",
		"xn--.com":                      "hyphen",
		label63 + "a.com":               "63",
		name253 + "b":                   "253",
		strings.Repeat("a.", 200) + "a": "253",
	}
	for s, why := range bad {
		err := ValidDomain(s)
		if err == nil {
			t.Errorf("ValidDomain(%q) passed", s)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), why) {
			t.Errorf("ValidDomain(%q) = %v, want ErrInvalid saying %q", s, err, why)
		}
	}
}

func TestValidVMTA(t *testing.T) {
	for _, s := range []string{"vmta-gm-011", "23.236.100.164", "pool_1", "VMTA.A", "*", "vmta-*", "vmta-gm-0?1", "{default}", strings.Repeat("v", 128)} {
		if err := ValidVMTA(s); err != nil {
			t.Errorf("ValidVMTA(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "a/b", "{bounceProcessor}", "{default", "a b", "vmta;reload", "vmta\n", "vmtä", strings.Repeat("v", 129)} {
		if err := ValidVMTA(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidVMTA(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestValidQueue(t *testing.T) {
	for _, s := range []string{"gmail.com", "gmail.com/*", "*/*", "*/vmta-gm-011", "gmail.com/{default}", "yahoo.*/vmta-yh-0?1", "aol.com/23.236.100.164"} {
		if err := ValidQueue(s); err != nil {
			t.Errorf("ValidQueue(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "/", "gmail.com/", "/vmta", "a.com/b/c", "gmail.com/vm ta", "gmail.com/../x", "gmail..com/*", "*/*\n"} {
		if err := ValidQueue(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidQueue(%q) = %v, want ErrInvalid", s, err)
		}
	}
	// An error repeats at most a bounded part of a stranger's value.
	err := ValidQueue(strings.Repeat("a", 5000) + "/x")
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("long queue: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := []string{
		"pause queue gmail.com/*", "resume queue */vmta-gm-011", "pause queue gmail.com",
		"pause job spring-sale-0115", "resume job 42",
		"schedule gmail.com/*", "schedule --retry-recipients gmail.com/*",
		"set queue --mode=backoff gmail.com/*", "set queue --mode=NORMAL gmail.com/vmta-gm-011",
		"show status", "show version", "show license", "show queues", "show topqueues --errors --maxitems=100",
		"show queues --paused=yes --mode=backoff --connected=no --sort=rcpt", "show queues gmail.com/*",
		"show domains --maxitems=5", "show vmtas", "show jobs", "show settings gmail.com/vmta-gm-011",
		"show vmta-settings vmta-gm-011", "show disabled sources",
		"list --queue=*/* --older-than=1h --maxitems=100", "list --older-than=1d12h", "list",
		// Not known, so not checked: the allow-list decides.
		"reload", "delete --queue=gmail.com/*", "rotate acct",
	}
	for _, line := range good {
		c, err := Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", line, err)
		}
	}
	bad := []string{
		"pause queue", "pause queue a.com/* b.com/*", "pause queue bad_domain.com", "pause queue x.com/* --force",
		"resume queue a..b", "pause job", "pause job a;b",
		"schedule", "schedule --now x.com/*", "schedule --retry-recipients=yes x.com/*",
		"set queue x.com/*", "set queue --mode=fast x.com/*", "set queue --mode=backoff",
		"show", "show nothing", "show status extra", "show status --errors", "show queues --paused=maybe",
		"show queues --maxitems=lots", "show queues --errors=1", "show queues --mode", "show queues --bogus",
		"show queues --paused=yes --paused=no", "show queues a..b", "show settings", "show vmta-settings a/b",
		"show disabled", "list extra", "list --older-than=soon", "list --older-than=1x", "list --queue=bad..dom",
		"list --bogus=1", "list --maxitems=-1", "list --queue=", "list --=x",
	}
	for _, line := range bad {
		c, err := Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) = %v, want ErrInvalid", line, err)
		}
	}
	if err := (Command{Verb: "pause", Args: []string{"queue", "x\n"}}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate let a newline pass: %v", err)
	}
}
