package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// PMTA is the pmta: section: PowerMTA's own configuration file, read for
// every setting the agent's configuration does not set (see applyPMTA).
type PMTA struct {
	// Config is PowerMTA's configuration file; "" reads none. When the
	// stock path is absent (a host without PowerMTA) nothing is derived;
	// another path must exist.
	Config string `koanf:"config"`
	// WebmonCert is the certificate PowerMTA 5 serves its web monitor with:
	// when it exists (and HTTPS is not turned off) the API is reached over
	// https trusting exactly it.
	WebmonCert string `koanf:"webmon_cert"`
	// Watch follows PowerMTA's configuration (the file and what it
	// includes) while the agent runs, checking every WatchInterval: each
	// change becomes a pmta_event point of kind config_change and a log
	// line. Only when the file was read at start.
	Watch         bool          `koanf:"watch"`
	WatchInterval time.Duration `koanf:"watch_interval"`
	// ImpactWindow is how long before and after each change the agent
	// compares the accounting records (with the accounting source on):
	// the final pmta_impact points come once it has passed.
	// ImpactEvery is how often provisional ones come before that (0:
	// only the final).
	ImpactWindow time.Duration `koanf:"impact_window"`
	ImpactEvery  time.Duration `koanf:"impact_every"`
}

// DefaultPMTA returns the stock locations, watched every 30 s, and the
// impact of a change over 2 h, provisionally every 15 min.
func DefaultPMTA() PMTA {
	return PMTA{Config: pmtaconf.DefaultPath, WebmonCert: pmtaconf.DefaultWebmonCert, Watch: true, WatchInterval: 30 * time.Second,
		ImpactWindow: 2 * time.Hour, ImpactEvery: 15 * time.Minute}
}

// Derivation is what the agent took from PowerMTA's configuration: the
// settings it filled in, each with the line it came from, and what it has
// to say about the file. Secrets are named, never shown.
type Derivation struct {
	File    string
	Origins map[string]string // setting key → "file:line: directive"
	// ISPAdded are the pipeline.isp_map domains that came from domain-macro
	// lines (the map may hold the file's own rules too).
	ISPAdded []string
	Notes    []string
	Warnings []string
}

// Keys returns the derived settings' keys in order.
func (d *Derivation) Keys() []string { return slices.Sorted(maps.Keys(d.Origins)) }

// applyPMTA fills in, from PowerMTA's configuration, each setting that the
// file and the environment leave unset (set reports whether they set a key
// or a key below it):
//   - api.enabled, api.url and api.tls.ca_file from http-mgmt-port,
//     http-redirect-to-https and the web monitor's certificate;
//   - api.api_key from the first http-api-key (unless api.api_key_file);
//   - acct.enabled and acct.globs from the <acct-file> blocks (their rotated
//     names, and move-to);
//   - the vmta → source IP and vmta → pool maps that fill records lacking
//     dlvSourceIp or vmtaPool;
//   - pipeline.isp_map entries from domain-macro lines, for domains the
//     built-in provider map does not know: "gmail.com" stays "google"
//     whatever a macro calls it, so that the dashboards' groups do not
//     split; rules of the agent's own isp_map win over both.
func applyPMTA(cfg *Config, set func(key string) bool) []error {
	path := cfg.PMTA.Config
	if path == "" {
		return nil
	}
	// The stock path may be absent (a host without PowerMTA, the example
	// file on a laptop) or unreadable to the agent's user (said, nothing
	// derived: an agent configured in full must still start); another
	// path, set on purpose, must be there and readable.
	stock := path == pmtaconf.DefaultPath
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && (stock || !set("pmta.config")) {
		return nil
	}
	root, err := pmtaconf.Load(path)
	if err != nil && stock && errors.Is(err, fs.ErrPermission) {
		cfg.Derived = &Derivation{File: path, Origins: map[string]string{}, Warnings: []string{
			fmt.Sprintf("%v: nothing taken from it (give the agent's user read access, or set pmta.config: \"\")", err)}}
		return nil
	}
	if err != nil {
		return []error{fmt.Errorf("pmta.config: %w", err)}
	}
	d := pmtaconf.Derive(root, pmtaconf.Options{WebmonCert: cfg.PMTA.WebmonCert})
	dv := &Derivation{File: path, Origins: map[string]string{}}
	for _, f := range d.Notes {
		dv.Notes = append(dv.Notes, f.String())
	}
	for _, f := range d.Warnings {
		dv.Warnings = append(dv.Warnings, f.String())
	}
	from := func(key string, p pmtaconf.Pos, what string) { dv.Origins[key] = fmt.Sprintf("%s: %s", p, what) }

	// The API settings follow PowerMTA's only where the file names no API
	// of its own: a URL set here is another host's, whose key and on/off
	// this PowerMTA does not decide.
	ownAPI := set("api.url")
	if d.API.Decided && !set("api.enabled") && !ownAPI {
		cfg.API.Enabled = d.API.Enabled
		from("api.enabled", d.API.URLFrom, "http-mgmt-port")
	}
	if d.API.Enabled && !set("api.url") {
		cfg.API.URL = d.API.URL
		from("api.url", d.API.URLFrom, "http-mgmt-port, and https when the web monitor's certificate is there")
		if d.API.CAFile != "" && !set("api.tls.ca_file") {
			cfg.API.TLS.CAFile = d.API.CAFile
			from("api.tls.ca_file", d.API.URLFrom, "PowerMTA's own web monitor certificate")
		}
	}
	// By value, not by key: the YAML init prints leaves a derived key out
	// and api_key_file empty, and loads back to the same key.
	if d.API.APIKey != "" && !ownAPI && cfg.API.APIKey == "" && cfg.API.APIKeyFile == "" {
		cfg.API.APIKey = d.API.APIKey
		from("api.api_key", d.API.KeyFrom, "http-api-key (not shown)")
	}
	if len(d.Acct) > 0 {
		if !set("acct.enabled") {
			cfg.Acct.Enabled = true
			from("acct.enabled", d.Acct[0].Pos, "<acct-file>")
		}
		if !set("acct.globs") {
			cfg.Acct.Globs = d.AcctGlobs()
			var where []string
			for _, f := range d.Acct {
				where = append(where, fmt.Sprintf("%s (%s, records %s)", f.Pos, f.Path, strings.Join(f.Records, ",")))
			}
			dv.Origins["acct.globs"] = strings.Join(where, "; ")
		}
	}
	if len(d.SourceIPs) > 0 || len(d.Pools) > 0 {
		cfg.Acct.SourceIPs, cfg.Acct.Pools = d.SourceIPs, d.Pools
		dv.Origins["acct (vmta → source IP, pool)"] = fmt.Sprintf("%s: %d <virtual-mta> smtp-source-host, %d in <virtual-mta-pool>", path, len(d.SourceIPs), len(d.Pools))
	}
	if len(d.DomainMacros) > 0 {
		builtin := agent.NewISPMap(nil)
		added := 0
		for dom, name := range d.DomainMacros {
			if _, own := cfg.Pipeline.ISPMap[dom]; own || builtin.Lookup(dom) != "other" {
				continue
			}
			if cfg.Pipeline.ISPMap == nil {
				cfg.Pipeline.ISPMap = map[string]string{}
			}
			cfg.Pipeline.ISPMap[dom] = name
			dv.ISPAdded = append(dv.ISPAdded, dom)
			added++
		}
		if added > 0 {
			dv.Origins["pipeline.isp_map"] = fmt.Sprintf("%s: %d domains of domain-macro lines the built-in map does not know", path, added)
		}
	}
	cfg.Derived = dv
	return nil
}
