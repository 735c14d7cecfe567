package impact

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Target is one thing a change touched, compared on its own row: the
// records whose Kind tag ("domain", "vmta", "pool" or "isp") is one of
// Values, summed. Name is how the row is labelled: the value, or for a
// domain-macro "$name".
type Target struct {
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Values []string `json:"-"`
}

// Focus is what a change touched; empty for none.
type Focus []Target

// focusKinds are the kinds a Target can be given as (ParseTarget); "isp"
// only arises from a domain-macro whose domains are unknown.
var focusKinds = []string{"domain", "vmta", "pool"}

// ParseTarget reads KIND=VALUE: domain=gmail.com, vmta=vmta-gm-011 or
// pool=pool-gmail.
func ParseTarget(s string) (Target, error) {
	kind, value, ok := strings.Cut(s, "=")
	kind, value = strings.ToLower(strings.TrimSpace(kind)), strings.TrimSpace(value)
	if !ok || value == "" || !slices.Contains(focusKinds, kind) {
		return Target{}, fmt.Errorf("%q: want KIND=VALUE with KIND one of %s (domain=gmail.com)", s, strings.Join(focusKinds, ", "))
	}
	// Values as written: Analyze makes them safe, then lowercases them,
	// as it does the records' (a value over 256 bytes hashed whole).
	return Target{Kind: kind, Name: strings.ToLower(value), Values: []string{value}}, nil
}

// blockLevel is one level of a pmtaconf.Change's Block path: "<domain
// gmail.com>".
var blockLevel = regexp.MustCompile(`<\s*([A-Za-z-]+)\s+([^>]*?)\s*>`)

// FocusOf derives the focus from a change's block path, each level it
// names: <domain gmail.com> the domain, <domain $gmail> the domains of
// domain-macro gmail (domainMacros maps a domain to its macro, as
// pmtaconf.Derived.DomainMacros does; when none lists it, the records whose
// isp is "gmail"), <virtual-mta vmta-gm-011> the vmta,
// <virtual-mta-pool pool-gmail> the pool. Patterns (<domain *>,
// <domain *.example>) touch too much to single out and are left out, as
// are the other blocks.
func FocusOf(block string, domainMacros map[string]string) Focus {
	var out Focus
	for _, m := range blockLevel.FindAllStringSubmatch(block, -1) {
		name, arg := strings.ToLower(m[1]), strings.ToLower(m[2])
		if arg == "" || strings.ContainsAny(arg, "*?[ ") {
			continue
		}
		switch name {
		case "domain":
			if macro, ok := strings.CutPrefix(arg, "$"); ok {
				out = append(out, macroTarget(macro, domainMacros))
			} else {
				out = append(out, Target{Kind: "domain", Name: arg, Values: []string{m[2]}})
			}
		case "virtual-mta":
			out = append(out, Target{Kind: "vmta", Name: arg, Values: []string{m[2]}})
		case "virtual-mta-pool":
			out = append(out, Target{Kind: "pool", Name: arg, Values: []string{m[2]}})
		}
	}
	return out
}

func macroTarget(macro string, domainMacros map[string]string) Target {
	var domains []string
	for d, m := range domainMacros {
		if strings.EqualFold(m, macro) {
			domains = append(domains, d)
		}
	}
	if len(domains) == 0 {
		return Target{Kind: "isp", Name: macro, Values: []string{macro}}
	}
	slices.Sort(domains)
	return Target{Kind: "domain", Name: "$" + macro, Values: domains}
}
