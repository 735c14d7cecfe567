package agent

import (
	"strings"
)

// ISPMap maps a recipient domain to the mailbox provider that runs it, so that
// dashboards can group yahoo.com, aol.com and ymail.com under one "yahoo".
//
// A rule is either an exact domain ("gmail.com") or a domain with a final "*"
// label ("hotmail.*"), which matches that name under any public suffix
// (hotmail.com, hotmail.co.uk, hotmail.fr). Subdomains match their parent:
// "eu.yahoo.com" is looked up as itself, then as "yahoo.com".
// Domains no rule matches belong to "other".
type ISPMap struct {
	exact  map[string]string
	prefix map[string]string // "hotmail." → "microsoft"
}

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
	m := &ISPMap{exact: map[string]string{}, prefix: map[string]string{}}
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
func (m *ISPMap) Lookup(domain string) string {
	for d := domain; d != ""; {
		if isp, ok := m.exact[d]; ok {
			return isp
		}
		if dot := strings.IndexByte(d, '.'); dot > 0 {
			if isp, ok := m.prefix[d[:dot+1]]; ok {
				return isp
			}
			d = d[dot+1:]
			continue
		}
		break
	}
	return "other"
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
