package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Validate reports every problem of the configuration, each with its key
// path, joined into one error; nil when the configuration can run.
func (c *Config) Validate() error {
	var p problems
	if c.Server == "" {
		p.add("server", "must be set (the host name could not be read)")
	}
	for k, v := range c.Tags {
		switch {
		case k == "":
			p.add("tags", "a tag name is empty")
		case reservedTag(k):
			p.add("tags."+k, "is set by the agent itself and cannot be a static tag")
		case v == "":
			p.add("tags."+k, "has an empty value")
		}
	}
	p.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	p.oneOf("log_format", c.LogFormat, "text", "json")
	p.positive("shutdown_timeout", c.ShutdownTimeout)
	p.positive("self_interval", c.SelfInterval)
	if c.MemoryLimit != 0 && c.MemoryLimit < 16<<20 {
		p.add("memory_limit", fmt.Sprintf("(%s) must be 0 (none) or at least 16MiB", c.MemoryLimit))
	}

	if c.Listen.Enabled {
		if _, port, err := net.SplitHostPort(c.Listen.Address); err != nil || port == "" {
			p.add("listen.address", fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:9099)", c.Listen.Address))
		}
		p.positive("listen.ready_max_tail_lag", c.Listen.ReadyMaxTailLag)
		p.positive("listen.ready_max_sink_failure", c.Listen.ReadyMaxSinkFailure)
	}

	if c.API.Enabled {
		a := c.API
		p.url("api.url", a.URL)
		p.oneOf("api.dialect", a.Dialect, "pmta", "seed")
		p.oneOf("api.format", a.Format, "json", "xml")
		if a.Dialect == "seed" && a.Format == "xml" {
			p.add("api.format", "xml exists only in the pmta dialect; the seed dialect serves JSON and CSV")
		}
		p.positive("api.interval", a.Interval)
		p.positive("api.timeout", a.Timeout)
		if a.Timeout > a.Interval && a.Interval > 0 {
			p.add("api.timeout", fmt.Sprintf("(%s) must not exceed api.interval (%s)", a.Timeout, a.Interval))
		}
		if a.Jitter < 0 || (a.Interval > 0 && a.Jitter >= a.Interval) {
			p.add("api.jitter", fmt.Sprintf("must be at least 0 and below api.interval (%s)", a.Interval))
		}
		if a.MaxItems < 0 {
			p.add("api.max_items", "must be 0 (PowerMTA's default) or more")
		}
		if a.MaxBodyBytes <= 0 {
			p.add("api.max_body_bytes", "must be more than 0 (e.g. 16MiB)")
		}
		if !a.Endpoints.Status && !a.Endpoints.Queues && !a.Endpoints.Domains && !a.Endpoints.VMTAs {
			p.add("api.endpoints", "all endpoints are off: turn one on or set api.enabled: false")
		}
		if a.APIKey != "" && cleartextRemote(a.URL) {
			p.add("api.api_key", "would be sent in clear text over http:// to a remote host; use https://")
		}
		p.tls("api.tls", a.TLS)
	}

	if c.Acct.Enabled {
		a := c.Acct
		if len(a.Globs) == 0 {
			p.add("acct.globs", "must list at least one pattern")
		}
		for i, g := range a.Globs {
			if _, err := filepath.Match(g, ""); err != nil {
				p.add(fmt.Sprintf("acct.globs[%d]", i), fmt.Sprintf("%q is not a valid pattern: %v", g, err))
			}
		}
		p.oneOf("acct.start_at", a.StartAt, "beginning", "end")
		p.positive("acct.interval", a.Interval)
		if a.Interval > 0 && a.Interval%time.Second != 0 {
			p.add("acct.interval", fmt.Sprintf("(%s) must be a whole number of seconds", a.Interval))
		} else if a.Interval > 0 && time.Hour%a.Interval != 0 {
			p.add("acct.interval", fmt.Sprintf("(%s) must divide an hour evenly so intervals line up across servers", a.Interval))
		}
		p.positive("acct.grace", a.Grace)
		p.positive("acct.poll_every", a.PollEvery)
		if a.TopDiag < 1 {
			p.add("acct.top_diag", "must be at least 1")
		}
		if a.MaxLineBytes < 1024 {
			p.add("acct.max_line_bytes", "must be at least 1024")
		}
		p.positive("acct.max_clock_skew", a.MaxClockSkew)
		if a.MaxAge < 0 || (a.MaxAge > 0 && a.MaxAge < time.Hour) {
			p.add("acct.max_age", fmt.Sprintf("(%s) must be 0 (any age) or at least 1h", a.MaxAge))
		}
		if c.StateDir == "" {
			p.add("state_dir", "must be set: the accounting checkpoint lives there")
		}
	}

	for _, m := range []struct {
		key string
		v   int
	}{
		{"max_domains", c.Pipeline.MaxDomains}, {"max_vmtas", c.Pipeline.MaxVMTAs}, {"max_pools", c.Pipeline.MaxPools},
		{"max_source_ips", c.Pipeline.MaxSourceIPs}, {"max_bounce_cats", c.Pipeline.MaxBounceCats}, {"max_diags", c.Pipeline.MaxDiags},
	} {
		if m.v < 1 {
			p.add("pipeline."+m.key, "must be at least 1")
		}
	}
	for k, v := range c.Pipeline.ISPMap {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			p.add("pipeline.isp_map", fmt.Sprintf("rule %q → %q has an empty side", k, v))
		}
	}

	if !c.Sinks.Stdout.Enabled && !c.Sinks.Influx.Enabled && !c.Sinks.OTLP.Enabled {
		p.add("sinks", "no sink is enabled: enable sinks.stdout, sinks.influx or sinks.otlp")
	}
	if o := c.Sinks.OTLP; o.Enabled {
		p.oneOf("sinks.otlp.protocol", o.Protocol, "grpc", "http")
		switch {
		case o.Endpoint == "":
			p.add("sinks.otlp.endpoint", "must be set")
		case o.Protocol == "http":
			p.url("sinks.otlp.endpoint", o.Endpoint)
			if strings.HasPrefix(o.Endpoint, "https://") && o.Insecure {
				p.add("sinks.otlp.insecure", "is set with an https:// endpoint; use http:// for plaintext")
			}
		case o.Protocol == "grpc":
			if _, port, err := net.SplitHostPort(o.Endpoint); err != nil || port == "" {
				p.add("sinks.otlp.endpoint", fmt.Sprintf("%q is not host:port (the grpc protocol takes no URL)", o.Endpoint))
			}
		}
		p.oneOf("sinks.otlp.temporality", o.Temporality, "delta", "cumulative")
		if o.Temporality == "cumulative" && c.StateDir == "" {
			p.add("state_dir", "must be set: cumulative OTLP totals live there")
		}
		if o.BatchSize < 1 {
			p.add("sinks.otlp.batch_size", "must be at least 1")
		}
		p.positive("sinks.otlp.timeout", o.Timeout)
		if len(o.Headers) > 0 {
			remotePlain := false
			switch o.Protocol {
			case "http":
				remotePlain = cleartextRemote(o.Endpoint)
			case "grpc":
				host, _, _ := net.SplitHostPort(o.Endpoint)
				remotePlain = o.Insecure && !loopbackHost(host)
			}
			if remotePlain {
				p.add("sinks.otlp.headers", "would be sent in clear text to a remote host; use TLS")
			}
		}
		p.tls("sinks.otlp.tls", o.TLS)
		p.queue("sinks.otlp.buffer", o.Buffer, c.StateDir)
	}
	if c.Sinks.Stdout.Enabled {
		p.queue("sinks.stdout.buffer", c.Sinks.Stdout.Buffer, c.StateDir)
	}
	if in := c.Sinks.Influx; in.Enabled {
		p.url("sinks.influx.url", in.URL)
		if in.Bucket == "" {
			p.add("sinks.influx.bucket", "must be set (InfluxDB 1.8: \"database/retention-policy\" or \"database\")")
		}
		if in.BatchSize < 1 {
			p.add("sinks.influx.batch_size", "must be at least 1")
		}
		p.positive("sinks.influx.timeout", in.Timeout)
		if in.Token != "" && cleartextRemote(in.URL) {
			p.add("sinks.influx.token", "would be sent in clear text over http:// to a remote host; use https://")
		}
		p.tls("sinks.influx.tls", in.TLS)
		p.queue("sinks.influx.buffer", in.Buffer, c.StateDir)
	}
	return p.err()
}

func reservedTag(k string) bool {
	switch k {
	case "server", "domain", "isp", "vmta", "type", "pool", "source_ip", "bounce_cat", "dsn_class", "diag", "component":
		return true
	}
	return false
}

type problems []error

func (p *problems) add(key, msg string) { *p = append(*p, fmt.Errorf("%s: %s", key, msg)) }

func (p *problems) err() error { return errors.Join(*p...) }

func (p *problems) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.add(key, fmt.Sprintf("is %q, want one of %s", v, strings.Join(allowed, ", ")))
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, fmt.Sprintf("must be a positive duration such as 10s (is %s)", d))
	}
}

func (p *problems) url(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		p.add(key, "must be set")
	case err != nil:
		// url.Parse quotes the whole URL, credentials included: say less.
		p.add(key, "is not a valid URL")
	case u.User != nil:
		p.add(key, "must not carry credentials; use the token, api_key or headers options")
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, fmt.Sprintf("%q must start with http:// or https://", u.Redacted()))
	case u.Host == "":
		p.add(key, fmt.Sprintf("%q has no host", u.Redacted()))
	}
}

func (p *problems) tls(key string, t transport.TLSConfig) {
	for _, f := range []struct{ name, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			p.add(key+"."+f.name, fmt.Sprintf("cannot be read: %v", err))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add(key, "cert_file and key_file go together")
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		p.add(key+".insecure_skip_verify", "is set together with ca_file; the CA would be ignored")
	}
}

func (p *problems) queue(key string, q Queue, stateDir string) {
	p.oneOf(key+".type", q.Type, "disk", "memory")
	switch q.Type {
	case "disk":
		if q.Dir == "" && stateDir == "" {
			p.add(key+".dir", "must be set when state_dir is empty")
		}
		if q.MaxBytes < 1<<20 {
			p.add(key+".max_bytes", fmt.Sprintf("(%s) must be at least 1MiB", q.MaxBytes))
		}
		p.oneOf(key+".sync", q.Sync, "always", "interval", "never")
		if q.Sync == "interval" {
			p.positive(key+".sync_every", q.SyncEvery)
		}
	case "memory":
		if q.MaxPoints < 1 {
			p.add(key+".max_points", "must be at least 1")
		}
	}
	p.positive(key+".min_backoff", q.MinBackoff)
	if q.MaxBackoff < q.MinBackoff {
		p.add(key+".max_backoff", "must not be below min_backoff")
	}
	if q.DeadLetterMaxBytes != 0 && q.DeadLetterMaxBytes < 64<<10 {
		p.add(key+".dead_letter_max_bytes", fmt.Sprintf("(%s) must be 0 (no file) or at least 64KiB", q.DeadLetterMaxBytes))
	} else if q.DeadLetterMaxBytes != 0 && stateDir == "" {
		p.add("state_dir", "must be set: dead-letter files live there (or set "+key+".dead_letter_max_bytes: 0)")
	}
}

// cleartextRemote tells whether raw is an http:// URL to a host other than
// this one: a secret sent there crosses the network unencrypted.
func cleartextRemote(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	return !loopbackHost(u.Hostname())
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
