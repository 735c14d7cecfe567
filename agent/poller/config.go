package poller

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/zerofill"

	"github.com/pmta-agent/pmta-agent/agent/bytesize"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Config is the poller's part of the configuration, the api section: the
// koanf tags are its keys, DefaultConfig its defaults, Validate its checks.
type Config struct {
	// Enabled switches the poller on.
	Enabled bool `koanf:"enabled"`
	// URL is the base URL of the management interface, e.g.
	// https://127.0.0.1:8080. A path (for a reverse proxy) is kept.
	URL string `koanf:"url"`
	// Dialect is "pmta" (the real web monitor, the default) or "seed".
	Dialect string `koanf:"dialect"`
	// Format is "json" (the default) or "xml"; pmta dialect only.
	Format string `koanf:"format"`
	// APIKey is sent as X-API-Key when non-empty. It is never logged and
	// never sent to another origin than URL's. APIKeyFile holds it instead;
	// the configuration loader reads it into APIKey.
	APIKey     string `koanf:"api_key"`
	APIKeyFile string `koanf:"api_key_file"`
	// Interval between rounds.
	Interval time.Duration `koanf:"interval"`
	// Timeout for each request, body included.
	Timeout time.Duration `koanf:"timeout"`
	// Jitter is the upper bound of a random extra delay before each round,
	// so that a fleet started together does not poll in lock step.
	Jitter time.Duration `koanf:"jitter"`
	// MaxItems is sent as maxitems= on the pmta list endpoints; 0 leaves
	// PowerMTA's own default (a top-N listing).
	MaxItems int `koanf:"max_items"`
	// MaxBodyBytes caps each reply; a longer one is refused (up=0).
	MaxBodyBytes bytesize.Size `koanf:"max_body_bytes"`
	// Endpoints switches the documents on and off one by one.
	Endpoints Endpoints `koanf:"endpoints"`
	// TLS configures HTTPS: a CA file for PowerMTA's self-signed
	// certificate, or skip-verify.
	TLS transport.TLSConfig `koanf:"tls"`
}

// Endpoints switches the poller's documents on and off one by one.
type Endpoints struct {
	Status  bool `koanf:"status"`
	Queues  bool `koanf:"queues"`
	Domains bool `koanf:"domains"`
	VMTAs   bool `koanf:"vmtas"`
}

// DefaultConfig returns the poller's defaults: on, PowerMTA's default port
// on this host, every endpoint, a round a minute.
func DefaultConfig() Config {
	return Config{
		Enabled:      true,
		URL:          "http://127.0.0.1:8080",
		Dialect:      DialectPMTA,
		Format:       FormatJSON,
		Interval:     60 * time.Second,
		Timeout:      10 * time.Second,
		Jitter:       5 * time.Second,
		MaxItems:     1000,
		MaxBodyBytes: 16 << 20, // room for the maxRows rows kept, with their last errors
		Endpoints:    Endpoints{Status: true, Queues: true, Domains: true, VMTAs: true},
	}
}

// Dialects and formats.
const (
	DialectPMTA = "pmta"
	DialectSeed = "seed"
	FormatJSON  = "json"
	FormatXML   = "xml"
)

// withDefaults fills the zero values from DefaultConfig, for a Config built
// in code rather than loaded.
func (c Config) withDefaults() Config {
	c.Dialect = strings.ToLower(strings.TrimSpace(c.Dialect))
	c.Format = strings.ToLower(strings.TrimSpace(c.Format))
	zerofill.From(&c, DefaultConfig(), "Dialect", "Format", "Interval", "Timeout", "MaxBodyBytes")
	return c
}

// Validate reports every problem of the settings, each starting with its
// key relative to the api section ("interval: …").
func (c Config) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := transport.CheckURL(strings.TrimSpace(c.URL)); err != nil {
		bad("url", "%v", err)
	} else if u, _ := url.Parse(strings.TrimSpace(c.URL)); u.RawQuery != "" || u.Fragment != "" {
		bad("url", "must not carry a query or fragment; the poller adds its own")
	}
	dialect, format := strings.ToLower(strings.TrimSpace(c.Dialect)), strings.ToLower(strings.TrimSpace(c.Format))
	if dialect != DialectPMTA && dialect != DialectSeed {
		bad("dialect", "is %q, want one of pmta, seed", c.Dialect)
	}
	if format != FormatJSON && format != FormatXML {
		bad("format", "is %q, want one of json, xml", c.Format)
	}
	if dialect == DialectSeed && format == FormatXML {
		bad("format", "xml exists only in the pmta dialect; the seed dialect serves JSON and CSV")
	}
	if c.Interval <= 0 {
		bad("interval", "must be a positive duration such as 10s (is %s)", c.Interval)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be a positive duration such as 10s (is %s)", c.Timeout)
	} else if c.Interval > 0 && c.Timeout > c.Interval {
		bad("timeout", "(%s) must not exceed api.interval (%s)", c.Timeout, c.Interval)
	}
	if c.Jitter < 0 || (c.Interval > 0 && c.Jitter >= c.Interval) {
		bad("jitter", "must be at least 0 and below api.interval (%s)", c.Interval)
	}
	if c.MaxItems < 0 {
		bad("max_items", "must be 0 (PowerMTA's default) or more")
	}
	if c.MaxBodyBytes <= 0 {
		bad("max_body_bytes", "must be more than 0 (e.g. 16MiB)")
	}
	if e := c.Endpoints; !e.Status && !e.Queues && !e.Domains && !e.VMTAs {
		bad("endpoints", "all endpoints are off: turn one on or set api.enabled: false")
	}
	if strings.ContainsAny(c.APIKey, "\r\n") {
		bad("api_key", "must be one line")
	}
	if c.APIKey != "" && transport.CleartextRemote(c.URL) {
		bad("api_key", "would be sent in clear text over http:// to a remote host; use https://")
	}
	return append(errs, c.TLS.Validate("tls")...)
}
