// Package config loads pmta-agent's configuration: defaults in code, a YAML
// file over them, PMTA_AGENT_* environment variables over that, ${VAR}
// expansion in string values and *_file options for secrets. Validate reports
// every problem at once, each with its key path.
//
// It composes: each section is the Config of the component it configures —
// its keys (koanf tags), its defaults (DefaultConfig) and its checks
// (Validate) written there once. What is left here is the agent's own
// top-level settings, the composition, and the checks across sections.
package config

import (
	"time"

	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/bytesize"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/poller"
	"github.com/pmta-agent/pmta-agent/agent/relay"
	"github.com/pmta-agent/pmta-agent/agent/selfmon"
	"github.com/pmta-agent/pmta-agent/sinks/influx"
	"github.com/pmta-agent/pmta-agent/sinks/otlp"
	"github.com/pmta-agent/pmta-agent/sinks/stdout"
)

// Config is the whole configuration. Components receive their sections as
// plain values; nothing reads Config globally.
type Config struct {
	// Server is the `server` tag on every point; the host name by default.
	Server string `koanf:"server"`
	// Tags are added to every point (a point's own tag of the same name wins).
	Tags map[string]string `koanf:"tags"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `koanf:"log_level"`
	LogFormat string `koanf:"log_format"`
	// StateDir holds the accounting checkpoint, the sink queues, the
	// dead-letter files and the OTLP cumulative totals.
	StateDir string `koanf:"state_dir"`
	// ShutdownTimeout bounds how long a stop may take to hand buffered
	// points to the sinks.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// SelfInterval is how often the agent reports its own health as
	// pmta_agent points.
	SelfInterval time.Duration `koanf:"self_interval"`
	// MemoryLimit is the Go runtime's soft memory limit (0: none); the
	// GOMEMLIMIT environment variable wins over it.
	MemoryLimit bytesize.Size `koanf:"memory_limit"`

	Listen   selfmon.Config        `koanf:"listen"`
	Relay    relay.Config          `koanf:"relay"`
	API      poller.Config         `koanf:"api"`
	Acct     acct.Config           `koanf:"acct"`
	Pipeline engine.PipelineConfig `koanf:"pipeline"`
	Sinks    Sinks                 `koanf:"sinks"`
	// PMTA names PowerMTA's own configuration, read for what this one
	// leaves unset; Derived says what was taken from it (nil: nothing).
	PMTA    PMTA        `koanf:"pmta"`
	Derived *Derivation `koanf:"-"`
}

// Sinks configures where points go: each sink's settings, and next to them
// the buffer its points wait in.
type Sinks struct {
	Stdout Stdout `koanf:"stdout"`
	Influx Influx `koanf:"influx"`
	OTLP   OTLP   `koanf:"otlp"`
}

// Stdout is the sinks.stdout section.
type Stdout struct {
	stdout.Config `koanf:",squash"`
	Buffer        engine.BufferConfig `koanf:"buffer"`
}

// Influx is the sinks.influx section.
type Influx struct {
	influx.Config `koanf:",squash"`
	Buffer        engine.BufferConfig `koanf:"buffer"`
}

// OTLP is the sinks.otlp section.
type OTLP struct {
	otlp.Config `koanf:",squash"`
	Buffer      engine.BufferConfig `koanf:"buffer"`
}

// Default returns the configuration used where the file and the environment
// say nothing: each component's defaults.
func Default() Config {
	return Config{
		LogLevel:        "info",
		LogFormat:       "text",
		StateDir:        "/var/lib/pmta-agent",
		ShutdownTimeout: engine.DefaultShutdownTimeout,
		SelfInterval:    60 * time.Second,
		MemoryLimit:     64 << 20,
		Listen:          selfmon.DefaultConfig(),
		Relay:           relay.DefaultConfig(),
		API:             poller.DefaultConfig(),
		Acct:            acct.DefaultConfig(),
		Pipeline:        engine.DefaultPipelineConfig(),
		PMTA:            DefaultPMTA(),
		Sinks: Sinks{
			Stdout: Stdout{Config: stdout.DefaultConfig(), Buffer: engine.MemoryBuffer()},
			Influx: Influx{Config: influx.DefaultConfig(), Buffer: engine.DiskBuffer()},
			OTLP:   OTLP{Config: otlp.DefaultConfig(), Buffer: engine.DiskBuffer()},
		},
	}
}
