package pmtaconf

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// diffFixture loads testdata/diff/<name>/{before,after}/config and diffs them.
func diffFixture(t *testing.T, name string) []Change {
	t.Helper()
	dir := filepath.Join("testdata", "diff", name)
	return Diff(load(t, filepath.Join(dir, "before", "config")), load(t, filepath.Join(dir, "after", "config")))
}

func changeStrings(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

// Each fixture pair and every change it must yield, in order.
func TestDiffFixtures(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"blocks", []string{
			"http-mgmt-port 8080 → 1993",
			"<domain $gmail> max-msg-rate 250/h → 500/h",
			"<domain $gmail> use-starttls yes added",
			"<domain $gmail> retry-after 10m removed",
			"<virtual-mta vmta-gm-011> <domain gmail.com> max-msg-rate 500/h → 800/h",
			"<virtual-mta-pool pool-gmail> <domain gmail.com> backoff-max-msg-rate 1/m → 2/m",
		}},
		{"macros", []string{
			"domain-macro gmail gmail.com,googlemail.com → googlemail.com,gmail.com,google.com",
			"domain-macro yahoo yahoo.com,ymail.com,aol.com added",
			"domain-macro aol aol.com removed",
			"<domain $yahoo> added",
			"<domain $aol> removed",
		}},
		{"includes", []string{
			"<domain gmail.com> max-msg-rate 250/h → 500/h",
			"<domain yahoo.com> added",
			"<virtual-mta vmta-gm-011> smtp-source-host 203.0.113.11 mta011.shop.example → mta011b.shop.example",
		}},
		{"secrets", []string{
			"http-api-key ***** → *****",
			"<acct-file /var/log/pmta/acct.csv> http-webhook-url https://agent:*****@hooks.shop.example/pmta → https://agent:*****@hooks.shop.example/pmta",
			"<acct-file |/usr/local/bin/acct-to-kafka --password ***** --topic pmta> added",
			"<domain smarthost.example> auth-username ***** → *****",
			"<domain smarthost.example> auth-password ***** → *****",
			"<domain smarthost.example> domain-key sel1,shop.example,/etc/pmta/dkim/sel1.pem → sel2,shop.example,/etc/pmta/dkim/sel2.pem",
			"<smtp-user injector@shop.example> password ***** → *****",
			"<acct-file |/usr/local/bin/acct-to-kafka --password ***** --topic pmta> removed",
		}},
		{"reorder", []string{
			"http-access order 127.0.0.1/32, 10.20.0.0/16, 0/0 → 127.0.0.1/32, 0/0, 10.20.0.0/16",
			"<virtual-mta-pool pool-gmail> virtual-mta vmta-gm-013 removed",
			"<virtual-mta-pool pool-gmail> virtual-mta vmta-gm-015 added",
			"<virtual-mta-pool pool-gmail> virtual-mta vmta-gm-014 added",
		}},
		{"added-removed", []string{
			"<domain yahoo.com> added",
			"<virtual-mta-pool pool-gmail> <domain gmail.com> added",
			"<domain aol.com> removed",
			"<virtual-mta vmta-old> removed",
		}},
		// The stock config rewritten: comments gone, names upper-cased,
		// values quoted, tabs for blanks. Nothing PowerMTA reads changed.
		{"cosmetic", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := changeStrings(diffFixture(t, tc.name))
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// The fields behind the strings: the op, the path, the name, the key and
// where — the new line, or the old one for a removal; an included file's
// own name and line.
func TestDiffFields(t *testing.T) {
	type where struct {
		file string
		line int
	}
	at := func(c Change) where {
		rel, _ := filepath.Rel(filepath.Join("testdata", "diff"), c.Pos.File)
		return where{filepath.ToSlash(rel), c.Pos.Line}
	}
	cs := diffFixture(t, "includes")
	if c := cs[0]; c.Op != Modified || c.Block != "<domain gmail.com>" || c.Directive != "max-msg-rate" ||
		c.Old != "250/h" || c.New != "500/h" || c.Masked || at(c) != (where{"includes/after/conf.d/domains.conf", 2}) {
		t.Errorf("included file's change %+v at %v", c, at(c))
	}
	if c := cs[1]; c.Op != Added || c.Block != "<domain yahoo.com>" || c.Directive != "" || at(c) != (where{"includes/after/conf.d/yahoo.conf", 1}) {
		t.Errorf("block added %+v at %v", c, at(c))
	}
	cs = diffFixture(t, "blocks")
	if c := cs[3]; c.Op != Removed || c.Old != "10m" || c.New != "" || at(c) != (where{"blocks/before/config", 11}) {
		t.Errorf("removal %+v at %v", c, at(c))
	}
	if c := cs[2]; c.Op != Added || c.Old != "" || c.New != "yes" || at(c) != (where{"blocks/after/config", 12}) {
		t.Errorf("addition %+v at %v", c, at(c))
	}
	cs = diffFixture(t, "macros")
	if c := cs[0]; c.Directive != "domain-macro" || c.Key != "gmail" || c.Old != "gmail.com,googlemail.com" {
		t.Errorf("keyed %+v", c)
	}
	cs = diffFixture(t, "added-removed")
	if c := cs[3]; c.Op != Removed || at(c) != (where{"added-removed/before/config", 8}) {
		t.Errorf("block removed %+v at %v", c, at(c))
	}
	cs = diffFixture(t, "secrets")
	for _, c := range cs {
		if !c.Masked && c.Directive != "domain-key" {
			t.Errorf("%s: not marked masked", c)
		}
	}
}

// secretValues are the secrets written in testdata/diff/secrets.
var secretValues = []string{
	"k3y_for_the_agent", "old_second_key", "new_second_key", "hunter2", "hunter3",
	"kafka-pass", "relay-user", "s3cret", "inj-pass",
}

// No secret of the fixture shows in any string a change carries, and
// Secrets finds every one of them (for scrubbing error texts).
func TestDiffMasksSecrets(t *testing.T) {
	cs := diffFixture(t, "secrets")
	for _, c := range cs {
		for _, s := range []string{c.String(), c.Block, c.Directive, c.Key, c.Old, c.New, c.Pos.String()} {
			for _, secret := range secretValues {
				if strings.Contains(s, secret) {
					t.Errorf("%q shows %q", s, secret)
				}
			}
		}
	}
	var found []string
	for _, v := range []string{"before", "after"} {
		found = append(found, Secrets(load(t, filepath.Join("testdata", "diff", "secrets", v, "config")))...)
	}
	all := strings.Join(found, "\n")
	for _, secret := range secretValues {
		if !strings.Contains(all, secret) {
			t.Errorf("Secrets misses %q in\n%s", secret, all)
		}
	}
	for _, kept := range []string{"agent", "hooks.shop.example", "/etc/pmta/dkim/sel1.pem", "|/usr/local/bin/acct-to-kafka", "--topic", "pmta"} {
		if slices.Contains(found, kept) {
			t.Errorf("Secrets holds %q, which is no secret:\n%s", kept, all)
		}
	}
}

func TestIsSecret(t *testing.T) {
	for name, want := range map[string]bool{
		"http-api-key": true, "HTTP-API-KEY": true, "auth-password": true, "auth-username": true,
		"password": true, "smtp-auth-passwd": true, "webhook-secret": true, "api-token": true,
		"dkim-private-key": true,
		"domain-key":       false, "http-mgmt-port": false, "max-msg-rate": false, "smtp-source-host": false,
		"virtual-mta": false, "http-access": false,
	} {
		if got := IsSecret(name); got != want {
			t.Errorf("IsSecret(%q) = %v", name, got)
		}
	}
}

func TestMaskArgs(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"250/h"}, nil},
		{[]string{"https://user:pw@host/x"}, []string{"https://user:*****@host/x"}},
		{[]string{"https://user@host/x?a=b"}, nil}, // no password: nothing to hide
		{[]string{"smtp://a:b@h1,smtp://c:d@h2"}, []string{"smtp://a:*****@h1,smtp://c:*****@h2"}},
		{[]string{"|/bin/x", "--password", "pw", "--topic", "t"}, []string{"|/bin/x", "--password", "*****", "--topic", "t"}},
		{[]string{"|/bin/x", "--api_key=pw", "-v"}, []string{"|/bin/x", "--api_key=*****", "-v"}},
		{[]string{"|/bin/x", "--token", "https://u:p@h"}, []string{"|/bin/x", "--token", "*****"}},
		{[]string{"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"}, []string{"*****"}},
		{[]string{"sel1,shop.example,/etc/pmta/dkim/sel1.pem"}, nil},
		{[]string{"/password expired/", "mode=backoff"}, nil}, // a reply pattern
	} {
		got, ok := MaskArgs(tc.in)
		want := tc.want
		if want == nil {
			want = tc.in
		}
		if !slices.Equal(got, want) || ok != (tc.want != nil) {
			t.Errorf("MaskArgs(%q) = %q, %v; want %q", tc.in, got, ok, want)
		}
	}
}

// Diff on trees built by hand: the rules the fixtures do not spell out.
func TestDiffRules(t *testing.T) {
	dir := func(name string, args ...string) Directive { return Directive{Name: name, Args: args} }
	blk := func(name string, args []string, ds []Directive, kids ...*Block) *Block {
		return &Block{Name: name, Args: args, Directives: ds, Blocks: kids}
	}
	root := func(ds []Directive, kids ...*Block) *Block { return blk("", nil, ds, kids...) }
	for _, tc := range []struct {
		name     string
		old, new *Block
		want     []string
	}{
		{"one member replaced is one change",
			root(nil, blk("virtual-mta-pool", []string{"p"}, []Directive{dir("virtual-mta", "a"), dir("virtual-mta", "b")})),
			root(nil, blk("virtual-mta-pool", []string{"p"}, []Directive{dir("virtual-mta", "c"), dir("virtual-mta", "a")})),
			[]string{"<virtual-mta-pool p> virtual-mta b → c"}},
		{"a repeated value counts",
			root([]Directive{dir("smtp-listener", "0/0:25")}),
			root([]Directive{dir("smtp-listener", "0/0:25"), dir("smtp-listener", "0/0:25")}),
			[]string{"smtp-listener 0/0:25 added"}},
		{"a block written twice is one block",
			root(nil, blk("domain", []string{"x.example"}, []Directive{dir("max-smtp-out", "2")}), blk("domain", []string{"x.example"}, []Directive{dir("retry-after", "5m")})),
			root(nil, blk("domain", []string{"x.example"}, []Directive{dir("max-smtp-out", "2"), dir("retry-after", "5m")})),
			nil},
		{"quoted words keep their blanks",
			root([]Directive{dir("postmaster", "a b")}),
			root([]Directive{dir("postmaster", "a", "b")}),
			[]string{`postmaster "a b" → a b`}},
		{"a value emptied",
			root([]Directive{dir("smtp-greeting", "hello")}),
			root([]Directive{dir("smtp-greeting")}),
			[]string{`smtp-greeting hello → ""`}},
		{"http-access by address: the level changes",
			root([]Directive{dir("http-access", "10.1.0/24", "monitor")}),
			root([]Directive{dir("http-access", "10.1.0.0/24", "ADMIN")}),
			[]string{"http-access 10.1.0.0/24 monitor → ADMIN"}},
		{"http-access level case is no change",
			root([]Directive{dir("http-access", "::1", "monitor")}),
			root([]Directive{dir("http-access", "::1", "Monitor")}),
			nil},
		{"a secret added and removed",
			root([]Directive{dir("http-api-key", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), dir("http-api-key", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")}),
			root(nil),
			[]string{"http-api-key ***** removed", "http-api-key ***** removed"}},
		{"yes and true are one boolean",
			root([]Directive{dir("iso-times", "yes"), dir("track-time-first-attempt", "TRUE"), dir("http-redirect-to-https", "off")}),
			root([]Directive{dir("iso-times", "true"), dir("track-time-first-attempt", "on"), dir("http-redirect-to-https", "No")}),
			nil},
		{"yes to no is a change",
			root([]Directive{dir("iso-times", "yes"), dir("max-smtp-out", "1")}),
			root([]Directive{dir("iso-times", "false"), dir("max-smtp-out", "true")}),
			[]string{"iso-times yes → false", "max-smtp-out 1 → true"}},
		{"nil is empty",
			nil,
			root([]Directive{dir("http-mgmt-port", "8080")}, blk("domain", []string{"*"}, nil)),
			[]string{"http-mgmt-port 8080 added", "<domain *> added"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := changeStrings(Diff(tc.old, tc.new))
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Files follows includes as Load does: patterns in name order, relative to
// the including file.
func TestFiles(t *testing.T) {
	fs, err := Files(filepath.Join("testdata", "diff", "includes", "after", "config"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		rel, _ := filepath.Rel(filepath.Join("testdata", "diff", "includes", "after"), f.Path)
		names = append(names, filepath.ToSlash(rel))
	}
	if want := []string{"config", "conf.d/domains.conf", "conf.d/yahoo.conf", "vmtas.inc"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	before, err := Files(filepath.Join("testdata", "diff", "includes", "before", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if before[0].Sum != fs[0].Sum || before[1].Sum == fs[1].Sum {
		t.Error("the same main file hashes differently, or a changed include the same")
	}
	if _, err := Files(filepath.Join("testdata", "diff", "nothing-here")); err == nil {
		t.Error("a missing file is no error")
	}
}

// Any configuration diffed against itself is no change, against nothing is
// additions only, and a secret directive's value shows only masked.
func FuzzDiff(f *testing.F) {
	addSeeds(f, "testdata/busy.config", "testdata/diff/secrets/before/config", "testdata/diff/reorder/after/config")
	f.Fuzz(func(t *testing.T, body []byte) {
		root, err := loadBody(t, body)
		if err != nil {
			return
		}
		if cs := Diff(root, root); len(cs) != 0 {
			t.Fatalf("a config differs from itself: %v", changeStrings(cs))
		}
		for _, c := range Diff(nil, root) {
			if c.Op != Added {
				t.Fatalf("from nothing: %s", c)
			}
			if IsSecret(c.Directive) && (c.New != Masked || !c.Masked) {
				t.Fatalf("secret shown: %s", c)
			}
		}
	})
}
