package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What init prints loads back to the same configuration, shows where each
// derived value came from, and never shows a secret.
func TestYAMLRoundTrip(t *testing.T) {
	pmtaConf, err := filepath.Abs("../pmtaconf/testdata/busy.config")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(`server: "mta 01: east"
tags: {dc: "fra#1", "odd key": "yes"}
sinks:
  influx: {enabled: true, url: http://db:8086, bucket: pmta, token: s3cr3t-token}
  otlp: {headers: {authorization: "Bearer x"}}
acct:
  views:
    - {name: pmta_acct, tags: [type, isp]}
    - {name: pmta_acct_dom, tags: [type, domain], max_domains: 7}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PMTA_AGENT_PMTA__CONFIG=" + pmtaConf, "PMTA_AGENT_PMTA__WEBMON_CERT=" + filepath.Join(dir, "none")}
	first, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	out := first.YAML()
	for _, secret := range []string{"s3cr3t-token", "Bearer x", "k3y_for_the_agent"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the YAML shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`url: "http://127.0.0.1:1993"  # from PowerMTA's config: ` + pmtaConf + ":3: http-mgmt-port",
		"# api_key: not shown; from PowerMTA's config: " + pmtaConf + ":6: http-api-key",
		"# token: set, not shown; keep it in the file that sinks.influx.token_file names"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the YAML does not say %q:\n%s", want, out)
		}
	}
	printed := filepath.Join(dir, "printed.yaml")
	if err := os.WriteFile(printed, out, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := Load(printed, env)
	if err != nil {
		t.Fatalf("the printed YAML does not load: %v\n%s", err, out)
	}
	// What was derived is derived again: the saved file follows PowerMTA's.
	if a, b := strings.Join(first.Derived.Keys(), ","), strings.Join(again.Derived.Keys(), ","); a != b {
		t.Errorf("derived first %s, from the printed file %s", a, b)
	}
	// The same settings, but for the secrets that were not printed (the API
	// key comes back from PowerMTA's configuration) and what was derived.
	first.Sinks.Influx.Token, first.Sinks.OTLP.Headers = "", map[string]string{}
	first.Derived, again.Derived = nil, nil
	// %+v, not DeepEqual: an empty map printed as {} loads as an empty map
	// where the first had none.
	if fmt.Sprintf("%+v", first) != fmt.Sprintf("%+v", again) {
		t.Errorf("loaded back differently:\n%+v\n%+v\n%s", first, again, out)
	}
}

// Values a stranger could put in a configuration load back as written:
// backslashes, YAML's own syntax, 64 KB values and keys; invalid UTF-8,
// which YAML cannot carry, comes back as U+FFFD.
func TestYAMLHostileValues(t *testing.T) {
	dir := t.TempDir()
	for i, v := range []string{`ends\`, `C:\path`, "a\nb", "#hash", "- dash", "yes", "0x10", "~", "'q'", `"dq"`, " lead",
		"9999-12-31T23:59:59Z", strings.Repeat("x", 64<<10), "bad\xff\xfeutf8"} {
		cfg := Default()
		cfg.Server, cfg.Tags, cfg.PMTA.Config = v, map[string]string{v: v}, ""
		path := filepath.Join(dir, fmt.Sprint(i, ".yaml"))
		if err := os.WriteFile(path, cfg.YAML(), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path, nil)
		if err != nil {
			t.Errorf("%.20q: %v", v, err)
			continue
		}
		want := strings.ToValidUTF8(v, "\uFFFD")
		if got.Server != want || got.Tags[want] != want || len(got.Tags) != 1 {
			t.Errorf("%.20q: server %.20q, tags %d", v, got.Server, len(got.Tags))
		}
	}
}
