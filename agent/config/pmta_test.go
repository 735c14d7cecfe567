package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// PowerMTA's configuration fills what the agent's leaves unset, says where
// each value came from, and never overrides what the agent's file sets.
func TestPMTADerivation(t *testing.T) {
	pmtaConf, err := filepath.Abs("../pmtaconf/testdata/busy.config")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert := filepath.Join(dir, "webmon.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte("sinks:\n  influx: {enabled: true, url: http://db:8086, bucket: pmta}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PMTA_AGENT_PMTA__CONFIG=" + pmtaConf, "PMTA_AGENT_PMTA__WEBMON_CERT=" + cert}
	cfg, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.API.Enabled || cfg.API.URL != "https://127.0.0.1:1993" || cfg.API.TLS.CAFile != cert ||
		cfg.API.APIKey != "k3y_for_the_agent_0123456789abcdef" {
		t.Errorf("api %+v", cfg.API)
	}
	if !cfg.Acct.Enabled || !reflect.DeepEqual(cfg.Acct.Globs, []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/done/acct-*.csv", "/var/log/pmta/fbl-*.csv"}) {
		t.Errorf("acct %v %v", cfg.Acct.Enabled, cfg.Acct.Globs)
	}
	if cfg.Acct.SourceIPs["vmta-gm-011"] != "203.0.113.11" || cfg.Acct.Pools["vmta-tx-005"] != "pool-transactional" {
		t.Errorf("fill maps %v %v", cfg.Acct.SourceIPs, cfg.Acct.Pools)
	}
	// The macros' domains the built-in map knows stay with it.
	if len(cfg.Pipeline.ISPMap) != 0 {
		t.Errorf("isp_map %v: every macro domain here is a known provider's", cfg.Pipeline.ISPMap)
	}
	d := cfg.Derived
	if d == nil {
		t.Fatal("nothing derived")
	}
	if got := strings.Join(d.Keys(), ","); got != "acct (vmta → source IP, pool),acct.enabled,acct.globs,api.api_key,api.enabled,api.tls.ca_file,api.url" {
		t.Errorf("derived keys %s", got)
	}
	if o := d.Origins["api.url"]; !strings.Contains(o, "busy.config:3") {
		t.Errorf("api.url from %q", o)
	}
	for _, o := range d.Origins {
		if strings.Contains(o, "k3y_for_the_agent") {
			t.Errorf("the key is shown: %q", o)
		}
	}
	if len(d.Warnings) != 2 || !strings.Contains(d.Warnings[0], "busy.config:4") {
		t.Errorf("warnings %q", d.Warnings)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}

	// What the file sets wins.
	if err := os.WriteFile(path, []byte("api: {url: http://10.0.0.1:8080, api_key: mine}\nacct: {enabled: false}\n"+
		"pipeline: {isp_map: {corp.example: corp}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	macros := filepath.Join(dir, "pmta.config")
	if err := os.WriteFile(macros, []byte("domain-macro ours corp.example, partner.example, gmail.com\n<acct-file /l/a.csv>\n</acct-file>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(path, []string{"PMTA_AGENT_PMTA__CONFIG=" + macros})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.URL != "http://10.0.0.1:8080" || cfg.API.APIKey != "mine" || cfg.Acct.Enabled {
		t.Errorf("the file's settings were overridden: %+v %v", cfg.API, cfg.Acct.Enabled)
	}
	if !reflect.DeepEqual(cfg.Pipeline.ISPMap, map[string]string{"corp.example": "corp", "partner.example": "ours"}) {
		t.Errorf("isp_map %v", cfg.Pipeline.ISPMap)
	}

	// An API URL of the file's own: PowerMTA's key and port stay out of it.
	if err := os.WriteFile(path, []byte("api: {url: \"https://10.0.0.5:8080\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.APIKey != "" || !cfg.API.Enabled || cfg.API.URL != "https://10.0.0.5:8080" {
		t.Errorf("a remote API took the local key or switch: %+v", cfg.API)
	}

	// A path set explicitly must exist; the default may be absent.
	if _, err := Load(path, []string{"PMTA_AGENT_PMTA__CONFIG=" + filepath.Join(dir, "absent")}); err == nil ||
		!strings.Contains(err.Error(), "pmta.config:") {
		t.Errorf("a missing explicit pmta.config: %v", err)
	}
}
