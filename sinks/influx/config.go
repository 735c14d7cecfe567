package influx

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/zerofill"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// Config is the sink's configuration: the sinks.influx section of the
// configuration file (its koanf tags are the YAML keys), apart from the
// buffer subsection, which the config package puts next to it. Its
// defaults are DefaultConfig and its checks Validate.
type Config struct {
	// Enabled turns the sink on; New does not read it.
	Enabled bool `koanf:"enabled"`
	// URL is the server's base URL, e.g. https://influx.example:8086.
	URL string `koanf:"url"`
	// Org is the 2.x/3.x organisation; InfluxDB 1.8 ignores it.
	Org string `koanf:"org"`
	// Bucket is the 2.x/3.x bucket, or for 1.8 "db/rp" or "db".
	Bucket string `koanf:"bucket"`
	// Token is the 2.x/3.x API token, or for 1.8 "user:password". It is sent
	// only in the Authorization header: never logged, never in an error.
	Token string `koanf:"token"`
	// TokenFile names a file holding the token. The config loader reads it
	// into Token; the sink does not read it.
	TokenFile string `koanf:"token_file"`
	// Gzip compresses request bodies.
	Gzip bool `koanf:"gzip"`
	// BatchSize is the most points sent in one request: the delivery loop
	// hands the sink no more in one Write.
	BatchSize int `koanf:"batch_size"`
	// Timeout bounds one HTTP request, from dial to the end of the response.
	Timeout time.Duration `koanf:"timeout"`
	// TLS configures certificate checks and client certificates for https.
	TLS transport.TLSConfig `koanf:"tls"`
	// Precision is the timestamp unit on the wire: time.Nanosecond,
	// time.Microsecond, time.Millisecond or time.Second. The configuration
	// file has no key for it; only a program building the sink sets it.
	Precision time.Duration `koanf:"-"`
}

// DefaultConfig returns the sink's defaults: the configuration file's
// values where it says nothing, and what New puts in the zero fields it
// fills.
func DefaultConfig() Config {
	return Config{
		URL:       "http://127.0.0.1:8086",
		Bucket:    "pmta",
		Gzip:      true,
		BatchSize: agent.DefaultBatchSize,
		Timeout:   10 * time.Second,
		Precision: time.Nanosecond,
	}
}

// Validate reports every problem of the settings an operator writes, each
// error starting with its key relative to the section ("url: must be set").
// It checks them whether or not Enabled is set. Besides what New refuses
// (see check), it refuses settings that would expose the token or a
// password: credentials in the URL, where logs, process lists and the
// configuration itself show them, and a token sent in clear text to
// another host.
func (c Config) Validate() []error {
	errs := c.check()
	if u, err := url.Parse(c.URL); err == nil && u.User != nil {
		errs = append(errs, fmt.Errorf("url: %w", transport.CheckURL(c.URL)))
	}
	if c.Token != "" && transport.CleartextRemote(c.URL) {
		errs = append(errs, errors.New("token: would be sent in clear text over http:// to a remote host; use https://"))
	}
	return errs
}

// check reports the problems New refuses: settings the sink cannot work
// with. It leaves credentials in the URL to Validate: a program that
// builds a Config may use them (the client turns them into Basic
// authentication), and the sink keeps them out of its errors and logs.
func (c Config) check() []error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, a...))
	}
	if err := transport.CheckURL(withoutUser(c.URL)); err != nil {
		add("url", "%w", err)
	}
	if c.Bucket == "" {
		add("bucket", `must be set (InfluxDB 1.8: "database/retention-policy" or "database")`)
	}
	if c.BatchSize < 1 {
		add("batch_size", "must be at least 1")
	}
	if c.Timeout <= 0 {
		add("timeout", "must be a positive duration such as 10s (is %s)", c.Timeout)
	}
	return append(errs, c.TLS.Validate("tls")...)
}

// withoutUser returns raw without the credentials of its URL, or raw as it
// is when it is not a URL with credentials.
func withoutUser(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// checkWiring reports problems of the fields that have no key in the
// configuration file, which only a program building the sink sets.
func (c Config) checkWiring() []error {
	switch c.Precision {
	case time.Nanosecond, time.Microsecond, time.Millisecond, time.Second:
		return nil
	}
	return []error{fmt.Errorf("precision %s must be 1ns, 1µs, 1ms or 1s", c.Precision)}
}

// withDefaults fills, from DefaultConfig, the zero fields that a program
// building the sink may leave out. The destination (URL, Bucket) is never
// filled in: a program must say where to write.
func (c Config) withDefaults() Config {
	zerofill.From(&c, DefaultConfig(), "BatchSize", "Timeout", "Precision")
	return c
}

// String shows the configuration with the token masked, so that printing a
// Config cannot leak it.
func (c Config) String() string {
	c.Token = maskToken(c.Token)
	if u, err := url.Parse(c.URL); err == nil {
		c.URL = u.Redacted()
	} else {
		c.URL = "(invalid)"
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue is String for log/slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func maskToken(token string) string {
	if token == "" {
		return ""
	}
	return "[redacted]"
}
