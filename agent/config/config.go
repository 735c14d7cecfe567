// Package config loads pmta-agent's configuration: defaults in code, a YAML
// file over them, PMTA_AGENT_* environment variables over that, ${VAR}
// expansion in string values and *_file options for secrets. Validate reports
// every problem at once, each with its key path.
package config

import (
	"time"

	"github.com/pmta-agent/pmta-agent/agent/bytesize"

	"github.com/pmta-agent/pmta-agent/agent/transport"
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
	// StateDir holds the accounting checkpoint (and, later, the sink queues).
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

	Listen   Listen   `koanf:"listen"`
	API      API      `koanf:"api"`
	Acct     Acct     `koanf:"acct"`
	Pipeline Pipeline `koanf:"pipeline"`
	Sinks    Sinks    `koanf:"sinks"`
}

// Listen configures the agent's own HTTP listener: /metrics, /healthz,
// /readyz.
type Listen struct {
	Enabled bool   `koanf:"enabled"`
	Address string `koanf:"address"`
	// PMTAMetrics adds PowerMTA's own values to /metrics, for Prometheus.
	PMTAMetrics bool `koanf:"pmta_metrics"`
	// /readyz fails when the accounting tail lags more than ReadyMaxTailLag
	// or a sink has been failing for longer than ReadyMaxSinkFailure (and
	// when the last successful poll is older than three api.interval).
	ReadyMaxTailLag     time.Duration `koanf:"ready_max_tail_lag"`
	ReadyMaxSinkFailure time.Duration `koanf:"ready_max_sink_failure"`
}

// API configures the PowerMTA HTTP management interface poller.
type API struct {
	Enabled    bool                `koanf:"enabled"`
	URL        string              `koanf:"url"`
	Dialect    string              `koanf:"dialect"`
	Format     string              `koanf:"format"`
	APIKey     string              `koanf:"api_key"`
	APIKeyFile string              `koanf:"api_key_file"`
	Interval   time.Duration       `koanf:"interval"`
	Timeout    time.Duration       `koanf:"timeout"`
	Jitter     time.Duration       `koanf:"jitter"`
	MaxItems   int                 `koanf:"max_items"`
	Endpoints  Endpoints           `koanf:"endpoints"`
	TLS        transport.TLSConfig `koanf:"tls"`

	// MaxBodyBytes caps each reply; a longer one is refused (up=0).
	MaxBodyBytes bytesize.Size `koanf:"max_body_bytes"`
}

// Endpoints switches the poller's documents on and off one by one.
type Endpoints struct {
	Status  bool `koanf:"status"`
	Queues  bool `koanf:"queues"`
	Domains bool `koanf:"domains"`
	VMTAs   bool `koanf:"vmtas"`
}

// Acct configures the accounting-file tailer.
type Acct struct {
	Enabled      bool          `koanf:"enabled"`
	Globs        []string      `koanf:"globs"`
	StartAt      string        `koanf:"start_at"`
	Interval     time.Duration `koanf:"interval"`
	Grace        time.Duration `koanf:"grace"`
	PollEvery    time.Duration `koanf:"poll_every"`
	TopDiag      int           `koanf:"top_diag"`
	MaxLineBytes int           `koanf:"max_line_bytes"`
	// MaxClockSkew is how far past the clock a record's timeLogged may be;
	// later ones are out of range, counted and never aggregated.
	MaxClockSkew time.Duration `koanf:"max_clock_skew"`
	// MaxAge is how old a record read while tailing may be (0: any age);
	// older ones are out of range. backfill ignores it.
	MaxAge time.Duration `koanf:"max_age"`
}

// Pipeline configures tagging and the cardinality guard.
type Pipeline struct {
	// MaxDomains caps the distinct domains per batch; the smallest by
	// volume are folded into domain="other". The other caps do the same
	// for the tags strangers or configuration can multiply.
	MaxDomains    int `koanf:"max_domains"`
	MaxVMTAs      int `koanf:"max_vmtas"`
	MaxPools      int `koanf:"max_pools"`
	MaxSourceIPs  int `koanf:"max_source_ips"`
	MaxBounceCats int `koanf:"max_bounce_cats"`
	MaxDiags      int `koanf:"max_diags"`
	// ISPMap adds to (and overrides) the built-in domain → provider map.
	// Keys are domains ("example.net") or "name.*" for any suffix.
	ISPMap map[string]string `koanf:"isp_map"`
}

// MaxValues returns the caps by tag name, as engine.PipelineConfig takes
// them (agent.FoldedTags lists the names).
func (p Pipeline) MaxValues() map[string]int {
	return map[string]int{
		"domain": p.MaxDomains, "vmta": p.MaxVMTAs, "pool": p.MaxPools,
		"source_ip": p.MaxSourceIPs, "bounce_cat": p.MaxBounceCats, "diag": p.MaxDiags,
	}
}

// Sinks configures where points go.
type Sinks struct {
	Stdout Stdout `koanf:"stdout"`
	Influx Influx `koanf:"influx"`
	OTLP   OTLP   `koanf:"otlp"`
}

// OTLP exports OpenTelemetry metrics over gRPC or HTTP.
type OTLP struct {
	Enabled  bool   `koanf:"enabled"`
	Protocol string `koanf:"protocol"`
	// Endpoint is host:port for grpc, a URL for http.
	Endpoint string              `koanf:"endpoint"`
	Insecure bool                `koanf:"insecure"`
	TLS      transport.TLSConfig `koanf:"tls"`
	// Headers go with every export (authorization tokens); HeadersFile
	// holds more, one "Name: value" per line. Values are never logged.
	Headers     map[string]string `koanf:"headers"`
	HeadersFile string            `koanf:"headers_file"`
	Gzip        bool              `koanf:"gzip"`
	Timeout     time.Duration     `koanf:"timeout"`
	BatchSize   int               `koanf:"batch_size"`
	// Temporality of the accounting sums: delta or cumulative.
	Temporality string            `koanf:"temporality"`
	Resource    map[string]string `koanf:"resource"`
	Buffer      Queue             `koanf:"buffer"`
}

// Stdout writes line protocol to standard output.
type Stdout struct {
	Enabled bool  `koanf:"enabled"`
	Buffer  Queue `koanf:"buffer"`
}

// Influx writes to InfluxDB's /api/v2/write (1.8+, 2.x, 3.x).
type Influx struct {
	Enabled   bool                `koanf:"enabled"`
	URL       string              `koanf:"url"`
	Org       string              `koanf:"org"`
	Bucket    string              `koanf:"bucket"`
	Token     string              `koanf:"token"`
	TokenFile string              `koanf:"token_file"`
	Gzip      bool                `koanf:"gzip"`
	BatchSize int                 `koanf:"batch_size"`
	Timeout   time.Duration       `koanf:"timeout"`
	TLS       transport.TLSConfig `koanf:"tls"`
	Buffer    Queue               `koanf:"buffer"`
}

// Queue is where a sink's points wait until the sink acknowledged them, and
// how the sink's writes are retried.
type Queue struct {
	// Type is "disk" (a durable queue under Dir) or "memory" (lost on exit).
	Type string `koanf:"type"`
	// Dir defaults to <state_dir>/queue/<sink>.
	Dir string `koanf:"dir"`
	// MaxBytes bounds a disk queue; beyond it the oldest points are dropped
	// and counted.
	MaxBytes bytesize.Size `koanf:"max_bytes"`
	// MaxPoints bounds a memory queue in the same way.
	MaxPoints int `koanf:"max_points"`
	// Sync is the disk queue's fsync policy: "always" (before a batch
	// counts as stored), "interval" (every SyncEvery) or "never" (leave it
	// to the OS). It decides how much a power cut can cost.
	Sync      string        `koanf:"sync"`
	SyncEvery time.Duration `koanf:"sync_every"`

	MinBackoff time.Duration `koanf:"min_backoff"`
	MaxBackoff time.Duration `koanf:"max_backoff"`

	// DeadLetterMaxBytes bounds the file under <state_dir>/deadletter that
	// keeps the points the sink refuses for good (and its one older
	// generation); 0 keeps no file, the points are only counted.
	DeadLetterMaxBytes bytesize.Size `koanf:"dead_letter_max_bytes"`
}

// Default returns the configuration used where the file and the environment
// say nothing.
func Default() Config {
	disk := Queue{
		Type: "disk", MaxBytes: 1 << 30, MaxPoints: 1_000_000, Sync: "interval", SyncEvery: time.Second,
		MinBackoff: time.Second, MaxBackoff: time.Minute, DeadLetterMaxBytes: 16 << 20,
	}
	mem := disk
	mem.Type = "memory"
	// The stdout sink refuses nothing, and a backfill must not need the
	// daemon's state directory: no dead-letter file.
	mem.DeadLetterMaxBytes = 0
	return Config{
		LogLevel:        "info",
		LogFormat:       "text",
		StateDir:        "/var/lib/pmta-agent",
		ShutdownTimeout: 10 * time.Second,
		SelfInterval:    60 * time.Second,
		MemoryLimit:     64 << 20,
		Listen: Listen{
			Enabled:             true,
			Address:             "127.0.0.1:9099",
			ReadyMaxTailLag:     5 * time.Minute,
			ReadyMaxSinkFailure: 5 * time.Minute,
		},
		API: API{
			Enabled:   true,
			URL:       "http://127.0.0.1:8080",
			Dialect:   "pmta",
			Format:    "json",
			Interval:  60 * time.Second,
			Timeout:   10 * time.Second,
			Jitter:    5 * time.Second,
			MaxItems:  1000,
			Endpoints: Endpoints{Status: true, Queues: true, Domains: true, VMTAs: true},

			MaxBodyBytes: 16 << 20,
		},
		Acct: Acct{
			Enabled:      false,
			Globs:        []string{"/var/log/pmta/acct-*.csv", "/var/log/pmta/diag-*.csv"},
			StartAt:      "end",
			Interval:     10 * time.Second,
			Grace:        500 * time.Millisecond,
			PollEvery:    500 * time.Millisecond,
			TopDiag:      20,
			MaxLineBytes: 1 << 20,
			MaxClockSkew: 5 * time.Minute,
			MaxAge:       7 * 24 * time.Hour,
		},
		// Sized for a large sender: hundreds of source IPs and vmtas,
		// thousands of recipient domains of which the top 500 by volume
		// carry nearly all of it.
		Pipeline: Pipeline{MaxDomains: 500, MaxVMTAs: 500, MaxPools: 100, MaxSourceIPs: 1000, MaxBounceCats: 50, MaxDiags: 500},
		Sinks: Sinks{
			Stdout: Stdout{Buffer: mem},
			Influx: Influx{
				URL:       "http://127.0.0.1:8086",
				Bucket:    "pmta",
				Gzip:      true,
				BatchSize: 5000,
				Timeout:   10 * time.Second,
				Buffer:    disk,
			},
			OTLP: OTLP{
				Protocol:    "grpc",
				Endpoint:    "127.0.0.1:4317",
				Gzip:        true,
				Timeout:     10 * time.Second,
				BatchSize:   5000,
				Temporality: "delta",
				Buffer:      disk,
			},
		},
	}
}
