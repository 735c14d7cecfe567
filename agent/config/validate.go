package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Validate reports every problem of the configuration, each with its key
// path, joined into one error; nil when the configuration can run. Each
// section's own checks are its component's; the checks here are those of
// the top-level settings and those across sections.
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

	if c.PMTA.Watch && c.PMTA.WatchInterval < confwatch.MinInterval {
		p.add("pmta.watch_interval", fmt.Sprintf("(%s) must be at least 100ms (30s by default)", c.PMTA.WatchInterval))
	}
	if w := c.PMTA.ImpactWindow; w < time.Minute || w%time.Second != 0 {
		p.add("pmta.impact_window", fmt.Sprintf("(%s) must be whole seconds, at least 1m (2h by default)", w))
	}
	if e := c.PMTA.ImpactEvery; e != 0 && (e < time.Minute || e%time.Second != 0) {
		p.add("pmta.impact_every", fmt.Sprintf("(%s) must be 0 (only the final report) or whole seconds, at least 1m (15m by default)", e))
	}
	p.section("listen", c.Listen.Validate())
	p.section("relay", c.Relay.Validate())
	if c.Relay.Enabled {
		switch {
		case !c.Listen.Enabled:
			p.add("relay.enabled", "needs the listener (listen.enabled: true): the relay is served there")
		case !c.API.Enabled:
			p.add("relay.enabled", "needs the API source (api.enabled, api.url): commands go to PowerMTA's API")
		case !loopback(c.Listen.Address) && !c.Relay.AllowRemote:
			p.add("relay.enabled", fmt.Sprintf("listen.address %s is not loopback and the listener speaks plain HTTP: keep it on 127.0.0.1, or put a TLS proxy in front and set relay.allow_remote: true", c.Listen.Address))
		}
	}
	if c.API.Enabled {
		p.section("api", c.API.Validate())
	}
	if c.Acct.Enabled {
		p.section("acct", c.Acct.Validate())
		if c.StateDir == "" {
			p.add("state_dir", "must be set: the accounting checkpoint lives there")
		}
	}
	p.section("pipeline", c.Pipeline.Validate())

	s := c.Sinks
	for _, b := range []struct {
		key string
		on  bool
		buf engine.BufferConfig
	}{{"sinks.stdout", s.Stdout.Enabled, s.Stdout.Buffer}, {"sinks.influx", s.Influx.Enabled, s.Influx.Buffer}, {"sinks.otlp", s.OTLP.Enabled, s.OTLP.Buffer}} {
		if b.on && b.buf.DeadLetterMaxBytes != 0 && c.StateDir == "" {
			p.add("state_dir", "must be set: dead-letter files live there (or set "+b.key+".buffer.dead_letter_max_bytes: 0)")
		}
	}
	if !s.Stdout.Enabled && !s.Influx.Enabled && !s.OTLP.Enabled {
		p.add("sinks", "no sink is enabled: enable sinks.stdout, sinks.influx or sinks.otlp")
	}
	if s.Stdout.Enabled {
		p.section("sinks.stdout", s.Stdout.Validate())
		p.section("sinks.stdout.buffer", s.Stdout.Buffer.Validate(c.StateDir))
	}
	if s.Influx.Enabled {
		p.section("sinks.influx", s.Influx.Validate())
		p.section("sinks.influx.buffer", s.Influx.Buffer.Validate(c.StateDir))
	}
	if s.OTLP.Enabled {
		p.section("sinks.otlp", s.OTLP.Validate())
		p.section("sinks.otlp.buffer", s.OTLP.Buffer.Validate(c.StateDir))
		if s.OTLP.Temporality == "cumulative" && c.StateDir == "" {
			p.add("state_dir", "must be set: cumulative OTLP totals live there")
		}
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

// section adds a component's problems under the section's key path: the
// component words them from its own keys ("url: must be set").
func (p *problems) section(prefix string, errs []error) {
	for _, err := range errs {
		*p = append(*p, fmt.Errorf("%s.%w", prefix, err))
	}
}

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

// loopback reports whether a host:port listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && transport.LoopbackHost(host)
}
