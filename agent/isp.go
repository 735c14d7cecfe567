package agent

import (
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"
)

// ISPMap maps a recipient domain to the mailbox provider that runs it, so that
// dashboards can group yahoo.com, aol.com and ymail.com under one "yahoo".
//
// A rule is either an exact domain ("gmail.com") or a domain with a final "*"
// label ("hotmail.*"), which matches that name directly under a public
// suffix of the ICANN section of the Public Suffix List (hotmail.com,
// hotmail.co.uk, yahoo.co.jp, live.fr) — not that label anywhere in a domain:
// live.acme-corp.com and yahoo.mycompany.com are someone else's. Subdomains
// match their parent: "eu.yahoo.co.jp" is looked up as itself, then as
// "yahoo.co.jp". Domains no rule matches belong to "other".
type ISPMap struct {
	exact  map[string]string
	prefix map[string]string // "hotmail." → "microsoft"

	// atSuffix remembers, per domain a wildcard rule's name starts, whether
	// the rest of it is its public suffix. The check allocates (the list
	// first tries the name as an IP address), and the domains that need it —
	// yahoo.com, hotmail.com — are among the most common; Lookup runs per
	// point. At most maxSuffixCache entries: the distinct domains of one
	// server, which the pipeline bounds anyway.
	suffixMu sync.RWMutex
	atSuffix map[string]bool
}

const maxSuffixCache = 4096

// DefaultISPRules is the built-in provider map. Config can add rules and
// override these.
var defaultISPRules = map[string]string{
	"gmail.com": "google", "googlemail.com": "google", "google.com": "google",
	"outlook.com": "microsoft", "hotmail.*": "microsoft", "live.*": "microsoft",
	"msn.com": "microsoft", "windowslive.com": "microsoft", "outlook.*": "microsoft",
	"yahoo.*": "yahoo", "ymail.com": "yahoo", "rocketmail.com": "yahoo",
	"aol.com": "yahoo", "aol.*": "yahoo", "aim.com": "yahoo", "verizon.net": "yahoo",
	"icloud.com": "apple", "me.com": "apple", "mac.com": "apple",
	"comcast.net": "comcast", "att.net": "att", "sbcglobal.net": "att", "bellsouth.net": "att",
	"cox.net": "cox", "charter.net": "charter", "spectrum.net": "charter",
	"gmx.*": "gmx", "web.de": "webde", "t-online.de": "t-online",
	"orange.fr": "orange", "wanadoo.fr": "orange", "free.fr": "free", "sfr.fr": "sfr", "laposte.net": "laposte",
	"libero.it": "libero", "virgilio.it": "libero",
	"mail.ru": "mailru", "inbox.ru": "mailru", "list.ru": "mailru", "bk.ru": "mailru",
	"yandex.*": "yandex", "ya.ru": "yandex",
	"qq.com": "tencent", "163.com": "netease", "126.com": "netease",
	"naver.com": "naver", "protonmail.com": "proton", "proton.me": "proton", "pm.me": "proton",
	"zoho.com": "zoho", "btinternet.com": "bt", "seznam.cz": "seznam", "wp.pl": "wp", "o2.pl": "wp",
}

// DefaultISPRules returns a copy of the built-in provider map.
func DefaultISPRules() map[string]string {
	m := make(map[string]string, len(defaultISPRules))
	for k, v := range defaultISPRules {
		m[k] = v
	}
	return m
}

// NewISPMap builds the map from the built-in rules plus extra, whose entries
// win over built-in ones with the same key.
func NewISPMap(extra map[string]string) *ISPMap {
	m := &ISPMap{exact: map[string]string{}, prefix: map[string]string{}, atSuffix: map[string]bool{}}
	for _, rules := range []map[string]string{defaultISPRules, extra} {
		for k, v := range rules {
			k = strings.ToLower(strings.TrimSpace(k))
			if base, ok := strings.CutSuffix(k, ".*"); ok {
				m.prefix[base+"."] = v
			} else {
				m.exact[k] = v
			}
		}
	}
	return m
}

// Lookup returns the provider of domain (already lower case), or "other".
// It is safe for concurrent use.
func (m *ISPMap) Lookup(domain string) string {
	for d := domain; d != ""; {
		if isp, ok := m.exact[d]; ok {
			return isp
		}
		if dot := strings.IndexByte(d, '.'); dot > 0 {
			if isp, ok := m.prefix[d[:dot+1]]; ok && m.nameAtSuffix(d, dot) {
				return isp
			}
			d = d[dot+1:]
			continue
		}
		break
	}
	return "other"
}

// nameAtSuffix reports whether d[dot+1:] is d's public suffix, so that the
// label before it is the registered name (hotmail in hotmail.co.uk), not a
// subdomain of someone else's (hotmail in hotmail.example.org). Private
// suffixes (blogspot.com, github.io) and unknown top-level domains do not
// count: anyone can register a name under those.
func (m *ISPMap) nameAtSuffix(d string, dot int) bool {
	m.suffixMu.RLock()
	ok, known := m.atSuffix[d]
	m.suffixMu.RUnlock()
	if known {
		return ok
	}
	ps, icann := publicsuffix.PublicSuffix(d)
	ok = icann && ps == d[dot+1:]
	m.suffixMu.Lock()
	if len(m.atSuffix) < maxSuffixCache {
		m.atSuffix[strings.Clone(d)] = ok
	}
	m.suffixMu.Unlock()
	return ok
}

// SplitQueue splits a PowerMTA queue name "domain/vmta" into a lower-case
// domain and the vmta. A name without a slash is a domain on vmta "{default}",
// as PowerMTA itself reads it.
func SplitQueue(name string) (domain, vmta string) {
	name = strings.TrimSpace(name)
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return NormalizeDomain(name[:i]), name[i+1:]
	}
	return NormalizeDomain(name), "{default}"
}

// NormalizeDomain lower-cases a domain and strips a trailing dot and
// surrounding space, allocating only when something changes.
func NormalizeDomain(d string) string {
	d = strings.TrimSpace(d)
	d = strings.TrimSuffix(d, ".")
	for i := 0; i < len(d); i++ {
		if c := d[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(d)
		}
	}
	return d
}
