package pmtacmd

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// Bounds of names. A domain name is at most 253 characters in its dotted
// form and 63 per label (RFC 1035); PowerMTA documents no limit for a
// VirtualMTA name, 128 is more than any seen (IP-derived names such as
// "aol.com/23.236.100.164" are short).
const (
	maxDomain = 253
	maxLabel  = 63
	maxVMTA   = 128
)

// defaultVMTA is PowerMTA's name for the queue of mail without a VirtualMTA.
const defaultVMTA = "{default}"

// ValidQueue checks a queue name as PowerMTA's commands take it:
// "domain[/vmta]", each half checked by ValidDomain and ValidVMTA, with
// PowerMTA's wildcards * and ? in either ("*/*", "yahoo.com/*",
// "*/vmta-gm-011"); the vmta may be {default}. Errors wrap ErrInvalid.
func ValidQueue(s string) error {
	dom, vmta, hasVMTA := strings.Cut(s, "/")
	if err := ValidDomain(dom); err != nil {
		return fmt.Errorf("queue %q: %w", short(s), err)
	}
	if !hasVMTA {
		return nil
	}
	if err := ValidVMTA(vmta); err != nil {
		return fmt.Errorf("queue %q: %w", short(s), err)
	}
	return nil
}

// ValidDomain checks a destination domain, possibly a pattern: dot-separated
// labels of ASCII letters, digits and hyphens (no hyphen at either end of a
// label), each 1 to 63 characters, 253 in all, no dot at either end; an
// internationalised domain in its punycode form (xn--…, which must decode);
// PowerMTA's wildcards * (any run of characters) and ? (one character)
// anywhere, "*" alone included. Errors wrap ErrInvalid.
func ValidDomain(s string) error {
	switch {
	case s == "":
		return invalid("the domain is empty")
	case len(s) > maxDomain:
		return invalid("the domain is %d characters; at most %d", len(s), maxDomain)
	case !isASCII(s):
		if a, err := idna.Lookup.ToASCII(s); err == nil && isASCII(a) {
			return invalid("domain %q: write it in its ASCII form, %q", short(s), a)
		}
		return invalid("domain %q is not ASCII", short(s))
	case strings.HasPrefix(s, ".") || strings.HasSuffix(s, "."):
		return invalid("domain %q starts or ends with a dot", s)
	}
	for _, label := range strings.Split(s, ".") {
		if err := validLabel(label); err != nil {
			return fmt.Errorf("domain %q: %w", s, err)
		}
	}
	return nil
}

// validLabel checks one label of a domain (ASCII already).
func validLabel(l string) error {
	switch {
	case l == "":
		return invalid("an empty label (two dots in a row)")
	case len(l) > maxLabel:
		return invalid("label %q is %d characters; at most %d", l, len(l), maxLabel)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isAlnum(c) && c != '-' && c != '*' && c != '?' {
			return invalid("label %q holds %q; a domain has letters, digits, hyphens and the wildcards * ?", l, c)
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return invalid("label %q starts or ends with a hyphen", l)
	}
	if strings.ContainsAny(l, "*?") {
		return nil
	}
	if len(l) >= 4 && l[2:4] == "--" {
		// RFC 5891 reserves "??--" for encodings; only xn-- (punycode) is one.
		if !strings.EqualFold(l[:2], "xn") {
			return invalid("label %q has -- in third and fourth place, reserved for xn-- (punycode)", l)
		}
		u, err := idna.Lookup.ToUnicode(l)
		if err != nil {
			return invalid("label %q is not valid punycode: %v", l, err)
		}
		if a, err := idna.Lookup.ToASCII(u); err != nil || !strings.EqualFold(a, l) {
			return invalid("label %q is not the canonical punycode of %q", l, u)
		}
	}
	return nil
}

// ValidVMTA checks a VirtualMTA name, possibly a pattern: letters, digits,
// hyphen, underscore and dot (IP-derived names such as 23.236.100.164),
// with the wildcards * and ?, at most 128 characters; or {default}, the
// queue of mail routed through no VirtualMTA. Errors wrap ErrInvalid.
func ValidVMTA(s string) error {
	switch {
	case s == "":
		return invalid("the VirtualMTA name is empty")
	case strings.EqualFold(s, defaultVMTA):
		return nil
	case len(s) > maxVMTA:
		return invalid("the VirtualMTA name is %d characters; at most %d", len(s), maxVMTA)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("-_.*?", rune(c)) {
			return invalid("VirtualMTA %q holds %q; a name has letters, digits, - _ . and the wildcards * ?", short(s), c)
		}
	}
	return nil
}

// Validate checks the words of the commands PowerMTA documents (reference
// §1.1, "Commands"): "pause|resume queue QUEUE", "pause|resume job JOBID",
// "schedule [--retry-recipients] QUEUE", "set queue --mode=normal|backoff
// QUEUE", "show OBJECT [--option[=value]…]" for the documented objects and
// filters, and "list [--queue=QUEUE] [--older-than=AGE] [--maxitems=N]…".
// A command it does not know (delete, disable source, reload, …) is not
// checked: an allow-list decides whether it may be sent at all. Errors wrap
// ErrInvalid.
func (c Command) Validate() error {
	if err := c.check(); err != nil {
		return err
	}
	opts, rest, err := splitOptions(c.Args)
	if err != nil {
		return err
	}
	switch name := c.Name(); name {
	case "pause queue", "resume queue":
		if err := noOptions(name, opts); err != nil {
			return err
		}
		return oneQueue(name, rest[1:])
	case "pause job", "resume job":
		if err := noOptions(name, opts); err != nil {
			return err
		}
		if len(rest) != 2 || !isJobID(rest[1]) {
			return invalid("usage: %s JOBID (letters, digits, - _ .)", name)
		}
		return nil
	case "schedule":
		if err := knownOptions(name, opts, map[string]optionKind{"retry-recipients": flagOption}); err != nil {
			return err
		}
		return oneQueue(name, rest)
	case "set queue":
		if err := knownOptions(name, opts, map[string]optionKind{"mode": valueOption}); err != nil {
			return err
		}
		if m := strings.ToLower(opts["mode"].value); m != "normal" && m != "backoff" {
			return invalid("usage: set queue --mode={normal|backoff} QUEUE")
		}
		return oneQueue(name, rest[1:])
	case "list":
		return validateList(opts, rest)
	}
	if strings.HasPrefix(c.Name(), "show ") || strings.EqualFold(c.Verb, "show") {
		return validateShow(opts, rest)
	}
	return nil
}

// validateShow checks "show OBJECT [ARG] [--filters]".
func validateShow(opts map[string]option, rest []string) error {
	if len(rest) < 1 {
		return invalid("usage: show status|queues|topqueues|domains|topdomains|vmtas|jobs|settings QUEUE|vmta-settings VMTA|version|license|disabled sources")
	}
	object := strings.ToLower(rest[0])
	args := rest[1:]
	switch object {
	case "status", "version", "license", "jobs", "vmtas":
		if len(args) != 0 {
			return invalid("show %s takes no argument", object)
		}
		if object == "status" || object == "version" || object == "license" {
			return noOptions("show "+object, opts)
		}
	case "queues", "topqueues", "domains", "topdomains":
		if len(args) > 1 {
			return invalid("show %s takes at most one queue or domain", object)
		}
		if len(args) == 1 {
			if err := ValidQueue(args[0]); err != nil {
				return err
			}
		}
	case "settings":
		if err := noOptions("show settings", opts); err != nil {
			return err
		}
		return oneQueue("show settings", args)
	case "vmta-settings":
		if err := noOptions("show vmta-settings", opts); err != nil {
			return err
		}
		if len(args) != 1 {
			return invalid("usage: show vmta-settings VMTA")
		}
		return ValidVMTA(args[0])
	case "disabled":
		if len(args) != 1 || !strings.EqualFold(args[0], "sources") {
			return invalid("usage: show disabled sources")
		}
		return noOptions("show disabled sources", opts)
	default:
		return invalid("show: unknown object %q", short(rest[0]))
	}
	if err := knownOptions("show "+object, opts, showFilters); err != nil {
		return err
	}
	for k, o := range opts {
		if want, ok := showValues[k]; ok && !strings.Contains("|"+want+"|", "|"+strings.ToLower(o.value)+"|") {
			return invalid("show %s: --%s=%q, want one of %s", object, k, short(o.value), want)
		}
	}
	if n, ok := opts["maxitems"]; ok && !isDigits(n.value) {
		return invalid("show %s: --maxitems=%q is not a number", object, short(n.value))
	}
	return nil
}

// showFilters are the filters of PowerMTA's listings, showValues the values
// of those that take a word.
var (
	showFilters = map[string]optionKind{
		"connected": valueOption, "paused": valueOption, "mode": valueOption, "maxitems": valueOption,
		"errors": flagOption, "sort": valueOption, "no-rcpt-events": flagOption, "mode-events": flagOption,
	}
	showValues = map[string]string{"connected": "yes|no", "paused": "yes|no", "mode": "normal|backoff", "sort": "name|rcpt|size"}
)

// validateList checks "list [--queue=Q] [--older-than=AGE] [--maxitems=N] …".
func validateList(opts map[string]option, rest []string) error {
	if len(rest) != 0 {
		return invalid("list takes options only (--queue=domain/vmta, --older-than=1h, --maxitems=N)")
	}
	kinds := map[string]optionKind{
		"queue": valueOption, "older-than": valueOption, "maxitems": valueOption,
		"jobid": valueOption, "envid": valueOption, "orig": valueOption, "rcpt": valueOption,
	}
	if err := knownOptions("list", opts, kinds); err != nil {
		return err
	}
	if q, ok := opts["queue"]; ok {
		if err := ValidQueue(q.value); err != nil {
			return err
		}
	}
	if a, ok := opts["older-than"]; ok && !isAge(a.value) {
		return invalid("list: --older-than=%q is not an age such as 30m, 6h or 1d12h", short(a.value))
	}
	if n, ok := opts["maxitems"]; ok && !isDigits(n.value) {
		return invalid("list: --maxitems=%q is not a number", short(n.value))
	}
	return nil
}

// optionKind says whether an option takes a value (--mode=backoff) or none
// (--errors).
type optionKind int

const (
	flagOption optionKind = iota
	valueOption
)

// option is one --name[=value] word.
type option struct {
	value    string
	hasValue bool
}

// splitOptions separates --name[=value] options from the other words.
// Option names are lower-cased; one given twice is refused.
func splitOptions(args []string) (map[string]option, []string, error) {
	opts := map[string]option{}
	var rest []string
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			rest = append(rest, a)
			continue
		}
		k, v, hasValue := strings.Cut(name, "=")
		k = strings.ToLower(k)
		switch _, dup := opts[k]; {
		case k == "":
			return nil, nil, invalid("an option without a name: %q", short(a))
		case dup:
			return nil, nil, invalid("option --%s is given twice", k)
		case hasValue && v == "":
			return nil, nil, invalid("option --%s= has an empty value", k)
		}
		opts[k] = option{value: v, hasValue: hasValue}
	}
	return opts, rest, nil
}

func noOptions(name string, opts map[string]option) error {
	for k := range opts {
		return invalid("%s takes no option (got --%s)", name, k)
	}
	return nil
}

func knownOptions(name string, opts map[string]option, kinds map[string]optionKind) error {
	for k, o := range opts {
		kind, ok := kinds[k]
		switch {
		case !ok:
			return invalid("%s: unknown option --%s", name, k)
		case kind == flagOption && o.hasValue:
			return invalid("%s: --%s takes no value", name, k)
		case kind == valueOption && !o.hasValue:
			return invalid("%s: --%s needs a value (--%s=…)", name, k, k)
		}
	}
	return nil
}

func oneQueue(name string, args []string) error {
	if len(args) != 1 {
		return invalid("usage: %s domain[/vmta]", name)
	}
	return ValidQueue(args[0])
}

// isAge reports whether s is an age as PowerMTA writes one: plain seconds,
// or numbers each with a unit s, m, h, d or w ("90m", "6h", "1d12h").
func isAge(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case digits > 0 && strings.IndexByte("smhdw", c|0x20) >= 0:
			digits = 0
		default:
			return false
		}
	}
	return digits == 0 || isDigits(s)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isJobID(s string) bool {
	if s == "" || len(s) > maxVMTA {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("-_.", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// short bounds what an error message repeats of a stranger's value.
func short(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return truncate(s, limit) + "…"
}
