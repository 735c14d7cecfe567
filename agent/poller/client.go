package poller

import (
	"fmt"
	"net/http"
)

// APIKeyHeader is the header PowerMTA reads the API key from.
const APIKeyHeader = apiKeyHeader

// WithDefaults returns c with its zero values filled from DefaultConfig and
// the dialect and format lower-cased, as New does: for other clients of the
// same interface (the command client), which then Validate it.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// NewHTTPClient returns the HTTP client the poller talks to PowerMTA with,
// for other clients of the same interface: the agent's transport with c.TLS,
// redirects followed with the API key kept to c.URL's origin (and PowerMTA
// 5's upgrade of it to https), and no timeout of its own (the request's
// context has it). The caller sets APIKeyHeader on each request.
func NewHTTPClient(c Config) (*http.Client, error) {
	tlsCfg, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return newHTTPClient(tlsCfg), nil
}
