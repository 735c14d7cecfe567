package pmtaconf

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T, path string) *Block {
	t.Helper()
	root, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func texts(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d %s", filepath.Base(f.Pos.File), f.Pos.Line, f.Text))
	}
	return strings.Join(out, "\n")
}

// The stock config: the API on 8080 over http (no certificate here),
// loopback allowed, the two accounting files with their records.
func TestStockConfig(t *testing.T) {
	d := Derive(load(t, "testdata/stock.config"), Options{WebmonCert: filepath.Join(t.TempDir(), "none.pem")})
	if !d.API.Enabled || d.API.URL != "http://127.0.0.1:8080" || d.API.URLFrom.Line != 43 || d.API.CAFile != "" {
		t.Errorf("api %+v", d.API)
	}
	if !d.API.LoopbackAllowed || d.API.APIKey != "" {
		t.Errorf("loopback %v, key %q", d.API.LoopbackAllowed, d.API.APIKey)
	}
	want := []AcctFile{
		{Path: "/var/log/pmta/acct.csv", Pos: Pos{"testdata/stock.config", 67}, Records: []string{"d", "b"},
			Globs: []string{"/var/log/pmta/acct-*.csv"}},
		{Path: "/var/log/pmta/diag.csv", Pos: Pos{"testdata/stock.config", 77}, Records: []string{"t"},
			Globs: []string{"/var/log/pmta/diag-*.csv"}},
	}
	if !reflect.DeepEqual(d.Acct, want) {
		t.Errorf("acct files\n%+v\nwant\n%+v", d.Acct, want)
	}
	if g := d.AcctGlobs(); !reflect.DeepEqual(g, []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/diag-*.csv"}) {
		t.Errorf("globs %v", g)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("warnings on the stock config:\n%s", texts(d.Warnings))
	}
	if !strings.Contains(texts(d.Notes), "no web monitor certificate") {
		t.Errorf("notes:\n%s", texts(d.Notes))
	}
}

// A busy sender: several files (one a pipe), move-to, a non-default port
// over https with PowerMTA's own certificate, an API key, risky access
// rules, domain macros, vmtas and pools from an included file.
func TestBusyConfig(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "webmon.pem")
	if err := os.WriteFile(cert, []byte("not read here"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := Derive(load(t, "testdata/busy.config"), Options{WebmonCert: cert})
	if d.API.URL != "https://127.0.0.1:1993" || d.API.CAFile != cert {
		t.Errorf("api %+v", d.API)
	}
	if d.API.APIKey != "k3y_for_the_agent_0123456789abcdef" || d.API.KeyFrom.Line != 6 {
		t.Errorf("key %q from %v", d.API.APIKey, d.API.KeyFrom)
	}
	if !d.API.LoopbackAllowed {
		t.Error("0/0 monitor lets loopback in")
	}
	if got := texts(d.Warnings); !strings.Contains(got, "busy.config:4 the management port is open to every address (0.0.0.0/0 monitor)") ||
		!strings.Contains(got, "busy.config:5 admin access beyond loopback (10.20.0.0/16)") {
		t.Errorf("warnings:\n%s", got)
	}
	if got := texts(d.Notes); !strings.Contains(got, "busy.config:20 <acct-file |/usr/local/bin/acct-to-kafka --topic pmta> is a pipe") {
		t.Errorf("notes:\n%s", got)
	}
	want := []AcctFile{
		{Path: "/var/log/pmta/acct.csv", Pos: Pos{"testdata/busy.config", 12}, Records: []string{"d", "b", "r"}, MoveTo: "/var/log/pmta/done",
			Globs: []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/done/acct-*.csv"}},
		{Path: "/var/log/pmta/fbl.csv", Pos: Pos{"testdata/busy.config", 17}, Records: []string{"f"},
			Globs: []string{"/var/log/pmta/fbl-*.csv"}},
	}
	if !reflect.DeepEqual(d.Acct, want) {
		t.Errorf("acct files\n%+v\nwant\n%+v", d.Acct, want)
	}
	if !reflect.DeepEqual(d.SourceIPs, map[string]string{"vmta-gm-011": "203.0.113.11", "vmta-gm-012": "203.0.113.12", "vmta-tx-005": "203.0.113.5"}) {
		t.Errorf("source IPs %v", d.SourceIPs)
	}
	if !reflect.DeepEqual(d.Pools, map[string]string{"vmta-gm-011": "pool-gmail", "vmta-gm-012": "pool-gmail", "vmta-tx-005": "pool-transactional"}) {
		t.Errorf("pools %v", d.Pools)
	}
	if !reflect.DeepEqual(d.DomainMacros, map[string]string{"gmail.com": "gmail", "googlemail.com": "gmail",
		"hotmail.com": "msft", "outlook.com": "msft", "live.com": "msft"}) {
		t.Errorf("macros %v", d.DomainMacros)
	}
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// What the API derivation says for the cases an operator meets.
func TestAPIDerivation(t *testing.T) {
	cert := write(t, t.TempDir(), "webmon.pem", "x")
	cases := []struct {
		name, body string
		url        string
		loopback   bool
		warn, note string
	}{
		{"port off", "http-mgmt-port 0\n", "", false, "", "http-mgmt-port 0: the web monitor is off"},
		{"default port, https", "http-access 127.0.0.1/32 monitor\n", "https://127.0.0.1:8080", true, "", "no http-mgmt-port"},
		{"redirect off", "http-mgmt-port 8081\nhttp-redirect-to-https false\nhttp-access 127.0.0.1 operator\n", "http://127.0.0.1:8081", true, "", "HTTPS redirect off"},
		{"no way in", "http-mgmt-port 8081\nhttp-access 10.0.0.0/8 monitor\n", "https://127.0.0.1:8081", false, "the agent has no way to authenticate", ""},
		{"first rule wins", "http-access 127.0.0.1 none\nhttp-access 0/0 monitor\n", "https://127.0.0.1:8080", false, "open to every address", ""},
		{"ipv6 open", "http-access ::/0 admin\n", "https://127.0.0.1:8080", false, "admin access beyond loopback (::/0)", ""},
		{"short cidr", "http-access 127.0/16 monitor\nhttp-access 10.1.0/24 admin\n", "https://127.0.0.1:8080", true, "admin access beyond loopback (10.1.0.0/24)", ""},
		{"bad cidr", "http-access not-an-ip monitor\nhttp-api-key abc\n", "https://127.0.0.1:8080", false, `http-access "not-an-ip"`, ""},
		{"port no number", "http-mgmt-port 80 80\nhttp-access 127.0.0.1 monitor\n", "", false, `http-mgmt-port "80 80" is no port number`, ""},
		{"port too big", "http-mgmt-port 99999\nhttp-access 127.0.0.1 monitor\n", "", false, `http-mgmt-port "99999" is no port number`, ""},
		{"rules in file order", "http-mgmt-source 127.0.0.1 none\nhttp-access 127.0.0.1 monitor\n", "https://127.0.0.1:8080", false, "no way to authenticate", "deprecated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Derive(load(t, write(t, t.TempDir(), "config", c.body)), Options{WebmonCert: cert})
			if d.API.URL != c.url || d.API.Enabled != (c.url != "") || d.API.LoopbackAllowed != c.loopback {
				t.Errorf("api %+v", d.API)
			}
			if w := texts(d.Warnings); (c.warn == "") != (w == "") || !strings.Contains(w, c.warn) {
				t.Errorf("warnings %q, want %q", w, c.warn)
			}
			if c.note != "" && !strings.Contains(texts(d.Notes), c.note) {
				t.Errorf("notes %q, want %q", texts(d.Notes), c.note)
			}
		})
	}
}

// Syntax: comments, quotes, case, nesting, includes and their errors, with
// the line of each problem.
func TestParse(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "inc.conf", "HTTP-API-KEY \"quoted # not a comment\" # a comment\n")
	root := load(t, write(t, dir, "config", "# c\n  Http-Mgmt-Port   1993  \ninclude inc.conf\n<Domain *>\n  <x y>\n  </x>\n</domain>\n"))
	if d, _ := root.Last("http-mgmt-port"); d.Value() != "1993" || d.Pos.Line != 2 {
		t.Errorf("port %+v", d)
	}
	if d, _ := root.Last("http-api-key"); d.Value() != "quoted # not a comment" || filepath.Base(d.Pos.File) != "inc.conf" || d.Pos.Line != 1 {
		t.Errorf("key %+v", d)
	}
	if b := root.Children("domain"); len(b) != 1 || b[0].Arg() != "*" || len(b[0].Children("x")) != 1 {
		t.Errorf("blocks %+v", root.Blocks)
	}
	for _, c := range []struct{ body, want string }{
		{"<a>\n", "config:1: <a> is never closed"},
		{"</a>\n", "config:1: </a> closes no block"},
		{"<a>\n</b>\n", "config:2: </b> closes <a> of line 1"},
		{"x \"open\n", "config:1: a quote is never closed"},
		{"<a\n", `config:1: "<a" opens a block without a closing '>'`},
		{"include missing.conf\n", "config:1: include"},
		{"include config\n", "includes itself"},
	} {
		_, err := Load(write(t, t.TempDir(), "config", c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing file loaded")
	}
}

// addSeeds adds the files at paths to f's corpus.
func addSeeds(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// loadBody loads body written as a configuration file.
func loadBody(t *testing.T, body []byte) (*Block, error) {
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func FuzzLoad(f *testing.F) {
	addSeeds(f, "testdata/stock.config", "testdata/busy.config")
	f.Fuzz(func(t *testing.T, body []byte) {
		root, err := loadBody(t, body)
		if err != nil {
			return
		}
		Derive(root, Options{WebmonCert: filepath.Join(t.TempDir(), "none")})
	})
}
