package poller

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Config is the poller's part of the agent configuration, filled by the
// config layer and handed over as a plain value.
type Config struct {
	// URL is the base URL of the management interface, e.g.
	// https://127.0.0.1:8080. A path (for a reverse proxy) is kept.
	URL string
	// Dialect is "pmta" (the real web monitor, the default) or "seed".
	Dialect string
	// Format is "json" (the default) or "xml"; pmta dialect only.
	Format string
	// APIKey is sent as X-API-Key when non-empty. It is never logged and
	// never sent to a host other than the one in URL.
	APIKey string
	// Interval between rounds; 60s when zero.
	Interval time.Duration
	// Timeout for each request, body included; 10s when zero.
	Timeout time.Duration
	// Jitter is the upper bound of a random extra delay before each round,
	// so that a fleet started together does not poll in lock step.
	Jitter time.Duration
	// Status, Queues, Domains and VMTAs switch the endpoints on.
	Status, Queues, Domains, VMTAs bool
	// MaxItems is sent as maxitems= on the pmta list endpoints; 0 leaves
	// PowerMTA's own default (a top-N listing).
	MaxItems int
	// MaxBodyBytes caps each reply (api.max_body_bytes); a longer one is
	// refused. DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	// TLS configures HTTPS: a CA file for PowerMTA's self-signed
	// certificate, or skip-verify.
	TLS transport.TLSConfig
}

// Dialects and formats.
const (
	DialectPMTA = "pmta"
	DialectSeed = "seed"
	FormatJSON  = "json"
	FormatXML   = "xml"
)

// Defaults applied by New to zero values.
const (
	DefaultInterval = 60 * time.Second
	DefaultTimeout  = 10 * time.Second
	// DefaultMaxBodyBytes leaves room for a listing of the maxRows rows
	// the poller keeps, each with its last errors (some 500 bytes of JSON);
	// anything much larger is not PowerMTA talking.
	DefaultMaxBodyBytes = 16 << 20
)

// withDefaults fills the zero values that have a default.
func (c Config) withDefaults() Config {
	c.Dialect = strings.ToLower(strings.TrimSpace(c.Dialect))
	if c.Dialect == "" {
		c.Dialect = DialectPMTA
	}
	c.Format = strings.ToLower(strings.TrimSpace(c.Format))
	if c.Format == "" {
		c.Format = FormatJSON
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// validate reports every problem of a defaulted config, each under the name
// of its setting, and returns the parsed base URL.
func (c Config) validate() (*url.URL, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	base, err := url.Parse(strings.TrimSpace(c.URL))
	switch {
	case strings.TrimSpace(c.URL) == "":
		bad("url", "is required (e.g. https://127.0.0.1:8080)")
	case err != nil:
		bad("url", "cannot be parsed: %v", err)
	case base.Scheme != "http" && base.Scheme != "https":
		bad("url", "scheme must be http or https, got %q", base.Scheme)
	case base.Host == "":
		bad("url", "has no host")
	case base.RawQuery != "" || base.Fragment != "":
		bad("url", "must not carry a query or fragment; the poller adds its own")
	}
	switch c.Dialect {
	case DialectPMTA:
		if c.Format != FormatJSON && c.Format != FormatXML {
			bad("format", "must be json or xml, got %q", c.Format)
		}
	case DialectSeed:
		if c.Format != FormatJSON {
			bad("format", "the seed dialect has no format choice (it serves status.json and CSV), got %q", c.Format)
		}
	default:
		bad("dialect", "must be pmta or seed, got %q", c.Dialect)
	}
	if c.Interval < 0 {
		bad("interval", "must be positive, got %s", c.Interval)
	}
	if c.Timeout < 0 {
		bad("timeout", "must be positive, got %s", c.Timeout)
	}
	if c.Jitter < 0 {
		bad("jitter", "must not be negative, got %s", c.Jitter)
	}
	if c.MaxItems < 0 {
		bad("max_items", "must not be negative, got %d", c.MaxItems)
	}
	if c.MaxBodyBytes < 0 {
		bad("max_body_bytes", "must be positive, got %d", c.MaxBodyBytes)
	}
	if !c.Status && !c.Queues && !c.Domains && !c.VMTAs {
		bad("endpoints", "at least one of status, queues, domains, vmtas must be enabled")
	}
	if strings.ContainsAny(c.APIKey, "\r\n") {
		bad("api_key", "must be one line")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return base, nil
}
