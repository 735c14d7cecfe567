package agent

import (
	"strconv"
	"sync"
	"testing"
)

// A "name.*" rule matches name directly under a public suffix, and the
// subdomains of that; the same label elsewhere in a domain is someone else's.
func TestISPMapWildcard(t *testing.T) {
	m := NewISPMap(map[string]string{"acme.*": "acme"})
	for domain, want := range map[string]string{
		// name.<public suffix>, one or two labels, and subdomains of it.
		"hotmail.com": "microsoft", "hotmail.co.uk": "microsoft", "live.fr": "microsoft",
		"yahoo.com": "yahoo", "yahoo.co.jp": "yahoo", "eu.yahoo.co.jp": "yahoo",
		"mx.eu.yahoo.co.jp": "yahoo", "outlook.de": "microsoft", "acme.com.au": "acme",
		// The label inside someone else's domain.
		"live.acme-corp.com": "other", "yahoo.mycompany.com": "other",
		"mail.outlook.example.org": "other", "aol.partner-bank.com": "other",
		"hotmail.example.co.uk": "other", "acme.example.com": "other",
		// Private suffixes and unknown top-level domains are anyone's.
		"yahoo.blogspot.com": "other", "hotmail.github.io": "other", "yahoo.internal": "other",
		// Exact rules and the walk to a parent are unchanged.
		"outlook.com": "microsoft", "aol.com": "yahoo", "mx.gmail.com": "google",
		"yahoo.gmail.com": "google", "gmail": "other", "": "other", "com": "other",
	} {
		if got := m.Lookup(domain); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", domain, got, want)
		}
	}
}

// Lookup runs per point: an exact match, and a wildcard match seen before,
// must not allocate.
func TestISPMapLookupAllocs(t *testing.T) {
	m := NewISPMap(nil)
	for _, domain := range []string{"gmail.com", "mx.gmail.com", "hotmail.co.uk", "yahoo.mycompany.com", "unknown.example"} {
		m.Lookup(domain)
		if n := testing.AllocsPerRun(100, func() { m.Lookup(domain) }); n != 0 {
			t.Errorf("Lookup(%q): %.0f allocations per call", domain, n)
		}
	}
}

func TestISPMapConcurrent(t *testing.T) {
	m := NewISPMap(nil)
	domains := []string{"hotmail.com", "yahoo.co.jp", "live.acme-corp.com", "gmail.com", "outlook.fr"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				d := domains[(g+i)%len(domains)]
				want := map[string]string{"hotmail.com": "microsoft", "yahoo.co.jp": "yahoo",
					"live.acme-corp.com": "other", "gmail.com": "google", "outlook.fr": "microsoft"}[d]
				if got := m.Lookup(d); got != want {
					t.Errorf("Lookup(%q) = %q, want %q", d, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The cache of wildcard checks stays bounded however many domains pass.
func TestISPMapSuffixCacheBounded(t *testing.T) {
	m := NewISPMap(nil)
	for i := range maxSuffixCache + 100 {
		d := "yahoo.host" + strconv.Itoa(i) + ".com"
		if got := m.Lookup(d); got != "other" {
			t.Fatalf("Lookup(%q) = %q", d, got)
		}
	}
	if n := len(m.atSuffix); n > maxSuffixCache {
		t.Fatalf("%d cached checks, bound %d", n, maxSuffixCache)
	}
	if got := m.Lookup("yahoo.co.uk"); got != "yahoo" {
		t.Fatalf("Lookup(yahoo.co.uk) with a full cache = %q", got)
	}
}

func TestISPMap(t *testing.T) {
	m := NewISPMap(map[string]string{"example-isp.net": "example", "gmail.com": "alphabet"})
	for domain, want := range map[string]string{
		"gmail.com": "alphabet", "googlemail.com": "google", "hotmail.co.uk": "microsoft",
		"hotmail.com": "microsoft", "live.fr": "microsoft", "outlook.com": "microsoft", "msn.com": "microsoft",
		"yahoo.co.jp": "yahoo", "aol.com": "yahoo", "ymail.com": "yahoo", "eu.yahoo.com": "yahoo",
		"mx.example-isp.net": "example", "unknown.example": "other", "": "other", "com": "other",
	} {
		if got := m.Lookup(domain); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", domain, got, want)
		}
	}
}

func TestSplitQueue(t *testing.T) {
	for name, want := range map[string][2]string{
		"gmail.com/vmta-gm-011": {"gmail.com", "vmta-gm-011"},
		"Yahoo.COM/Pmta54-159":  {"yahoo.com", "Pmta54-159"},
		"aol.com":               {"aol.com", "{default}"},
		"{bounceProcessor}/x":   {"{bounceprocessor}", "x"},
	} {
		d, v := SplitQueue(name)
		if d != want[0] || v != want[1] {
			t.Errorf("SplitQueue(%q) = %q, %q; want %q, %q", name, d, v, want[0], want[1])
		}
	}
}
