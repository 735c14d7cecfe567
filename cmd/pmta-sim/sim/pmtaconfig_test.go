package sim

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// loadConfig parses a written config the way the agent does.
func loadConfig(t *testing.T, path string) (*pmtaconf.Block, *pmtaconf.Derived) {
	t.Helper()
	root, err := pmtaconf.Load(path)
	if err != nil {
		t.Fatalf("the agent cannot read the config: %v", err)
	}
	d := pmtaconf.Derive(root, pmtaconf.Options{WebmonCert: filepath.Join(t.TempDir(), "no-webmon.pem")})
	if len(d.Warnings) > 0 {
		t.Errorf("warnings: %v", d.Warnings)
	}
	return root, d
}

// modelTopology is what the config must say about the model's vmtas and
// domains, built from the model itself.
func modelTopology(s *Sim) (ips, pools, macros map[string]string) {
	ips, pools, macros = map[string]string{}, map[string]string{}, map[string]string{}
	for _, v := range s.vmtas {
		ips[v.name] = v.ip
		pools[v.name] = poolDefs[v.pool].name
	}
	for _, d := range s.domains {
		switch d.isp {
		case "other":
		case "google":
			macros[d.name] = "gmail"
		default:
			macros[d.name] = d.isp
		}
	}
	return ips, pools, macros
}

func TestWriteConfigDerivesTheModel(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "config") // the directory is created
	acctDir, moveTo := filepath.Join(dir, "acct"), filepath.Join(dir, "done")
	key := "k3y_for_the_agent_0123456789abcdef"
	o := ConfigOptions{HTTPPort: 18080, APIKey: key, AcctDir: acctDir, AcctMoveTo: moveTo, AcctSplitDiag: true}
	if err := s.WriteConfig(path, o); err != nil {
		t.Fatal(err)
	}
	_, d := loadConfig(t, path)

	ips, pools, macros := modelTopology(s)
	if !maps.Equal(d.SourceIPs, ips) {
		t.Errorf("source IPs\n got %v\nwant %v", d.SourceIPs, ips)
	}
	if !maps.Equal(d.Pools, pools) {
		t.Errorf("pools\n got %v\nwant %v", d.Pools, pools)
	}
	if !maps.Equal(d.DomainMacros, macros) {
		t.Errorf("domain macros\n got %v\nwant %v", d.DomainMacros, macros)
	}
	for dom, m := range map[string]string{"gmail.com": "gmail", "googlemail.com": "gmail", "aol.com": "yahoo", "hotmail.com": "microsoft"} {
		if d.DomainMacros[dom] != m {
			t.Errorf("%s in macro %q, want %q", dom, d.DomainMacros[dom], m)
		}
	}
	if !d.API.Enabled || d.API.URL != "http://127.0.0.1:18080" || d.API.APIKey != key || !d.API.LoopbackAllowed {
		t.Errorf("API %+v", d.API)
	}
	if len(d.Acct) != 2 || !slices.Equal(d.Acct[0].Records, []string{"d", "b", "r", "f", "rb", "rs"}) ||
		!slices.Equal(d.Acct[1].Records, []string{"t", "tq"}) || d.Acct[0].MoveTo != moveTo {
		t.Fatalf("accounting files %+v", d.Acct)
	}

	// The globs the agent derives find every file an AcctWriter with the
	// same options writes, where it writes them and where it moves them.
	w, err := s.NewAcctWriter(AcctOptions{Dir: acctDir, MoveTo: moveTo, SplitDiag: true, LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(500, testNow); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(500, testNow); err != nil {
		t.Fatal(err)
	}
	var written, found []string
	for _, sub := range []string{acctDir, moveTo} {
		names, _ := filepath.Glob(filepath.Join(sub, "*.csv"))
		written = append(written, names...)
	}
	for _, g := range d.AcctGlobs() {
		names, _ := filepath.Glob(g)
		found = append(found, names...)
	}
	slices.Sort(written)
	slices.Sort(found)
	if len(written) != 4 || !slices.Equal(written, found) {
		t.Errorf("written %v, found by the derived globs %v", written, found)
	}
	w.Close()

	// Nothing but the config is left in its directory.
	if names := listDir(t, filepath.Dir(path)); !slices.Equal(names, []string{"config"}) {
		t.Errorf("config directory holds %v", names)
	}
}

func TestWriteConfigDefaultsAndSmallModels(t *testing.T) {
	for _, o := range []Options{{}, {Domains: 2, VMTAs: 3}, {Domains: 400, VMTAs: 400}} {
		s, _, _ := newTestSim(t, o)
		path := filepath.Join(t.TempDir(), "config")
		if err := s.WriteConfig(path, ConfigOptions{APIKey: `a "quoted" key # not a comment`}); err != nil {
			t.Fatal(err)
		}
		root, d := loadConfig(t, path)
		ips, pools, macros := modelTopology(s)
		if !maps.Equal(d.SourceIPs, ips) || !maps.Equal(d.Pools, pools) || !maps.Equal(d.DomainMacros, macros) {
			t.Errorf("%+v: the derived topology is not the model's", o)
		}
		if d.API.URL != "http://127.0.0.1:8080" || d.API.APIKey != `a "quoted" key # not a comment` {
			t.Errorf("%+v: API %+v", o, d.API)
		}
		if len(d.Acct) != 1 || d.Acct[0].Path != "/var/log/pmta/acct.csv" || len(d.Acct[0].Records) != 8 {
			t.Errorf("%+v: accounting %+v", o, d.Acct)
		}
		// A <domain $macro> block only for a macro the file defines.
		for _, b := range root.Children("domain") {
			if m, ok := strings.CutPrefix(b.Arg(), "$"); ok && !slices.Contains(slices.Collect(maps.Values(macros)), m) {
				t.Errorf("%+v: <domain $%s> without its macro", o, m)
			}
		}
	}
	s, _, _ := newTestSim(t, Options{})
	if err := s.WriteConfig(filepath.Join(t.TempDir(), "config"), ConfigOptions{AcctRecords: "d,x"}); err == nil {
		t.Error("a bad records list was written")
	}
	if err := s.WriteConfig("", ConfigOptions{}); err == nil {
		t.Error("no path accepted")
	}
	blocked := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocked, nil, 0o644)
	if err := s.WriteConfig(filepath.Join(blocked, "config"), ConfigOptions{}); err == nil {
		t.Error("a config under a file was written")
	}
}

// The API key is a secret: a file holding it is not readable by others, as
// PowerMTA's own is not; one without it is. A scenario's rewrite keeps that.
func TestWriteConfigModeKeepsTheKeyFromOthers(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	for _, c := range []struct {
		name, key string
		others    bool
	}{{"with-key", "k3y", false}, {"without-key", "", true}} {
		path := filepath.Join(dir, c.name)
		if err := s.WriteConfig(path, ConfigOptions{APIKey: c.key}); err != nil {
			t.Fatal(err)
		}
		if c.key != "" {
			if _, err := s.ApplyScenario("config-noop"); err != nil {
				t.Fatal(err)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm()&0o007 != 0; got != c.others {
			t.Errorf("%s: mode %04o, readable by others %v, want %v", c.name, fi.Mode().Perm(), got, c.others)
		}
	}
}

func TestSizeWord(t *testing.T) {
	for n, want := range map[int64]string{50 << 20: "50M", 1 << 30: "1G", 3 << 10: "3K", 1000: "1000b"} {
		if got := sizeWord(n); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
}
