package pmtacmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/poller"
	"github.com/pmta-agent/pmta-agent/agent/redact"
)

// ErrAPIDisabled is NewClient's answer to an api section that is switched
// off: there is no PowerMTA API to send commands to.
var ErrAPIDisabled = errors.New("api.enabled is false: there is no PowerMTA API to send commands to (set api.enabled: true and api.url)")

// Client sends commands to one PowerMTA. It is safe for concurrent use.
type Client struct {
	endpoint string // {api.url}/command
	dialect  string
	apiKey   string
	timeout  time.Duration
	maxBody  int64
	hc       *http.Client
	scrub    redact.Redactor
	log      *slog.Logger
}

// NewClient returns a client for the PowerMTA the api section cfg points
// at: its URL (a path for a reverse proxy is kept), dialect, X-API-Key, TLS,
// timeout (api.timeout, the whole exchange) and reply cap
// (api.max_body_bytes). cfg gets the poller's defaults and is validated as
// the poller validates it. log receives one debug line per command; it must
// not be nil.
//
// The HTTP client is the poller's: redirects are followed with the API key
// kept to the configured origin. One more rule holds for commands: a
// redirect that would turn the POST into a GET (301, 302, 303) is not
// followed, since the command would be lost on the way; only 307 and 308,
// which repeat the POST, are.
func NewClient(cfg poller.Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		return nil, errors.New("pmtacmd: a logger is required")
	}
	if !cfg.Enabled {
		return nil, ErrAPIDisabled
	}
	cfg = cfg.WithDefaults()
	// Which documents the poller reads is no concern of commands: a Config
	// built in code without them is fine here.
	cfg.Endpoints = poller.DefaultConfig().Endpoints
	if err := errors.Join(cfg.Validate()...); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	base, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil { // Validate checked it; never here
		return nil, fmt.Errorf("api config: url: %w", err)
	}
	hc, err := poller.NewHTTPClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	keyRule := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Method != via[0].Method {
			return fmt.Errorf("not following the redirect to %s: it would turn the command's %s into a %s (set api.url to where PowerMTA answers)",
				req.URL.Redacted(), via[0].Method, req.Method)
		}
		if keyRule == nil { // never so: the poller's client has its rule
			return errors.New("not following a redirect: no rule for the API key")
		}
		return keyRule(req, via)
	}
	return &Client{
		endpoint: base.JoinPath("command").String(),
		dialect:  cfg.Dialect,
		apiKey:   cfg.APIKey,
		timeout:  cfg.Timeout,
		maxBody:  int64(cfg.MaxBodyBytes),
		hc:       hc,
		scrub:    newScrubber(cfg.APIKey),
		log:      log,
	}, nil
}

// Run sends cmd as it is (Translate it first) and returns PowerMTA's reply.
// The error is nil when PowerMTA ran the command; a *RefusedError, with the
// reply, when PowerMTA received the command and refused it; wraps
// ErrInvalid when cmd cannot be sent (a word with a control character or a
// double quote, a line over MaxLineBytes); anything else when PowerMTA could
// not be asked or did not answer as PowerMTA: no connection, api.timeout,
// an *HTTPError (403, 404, 5xx), a reply over api.max_body_bytes or not in
// PowerMTA's format. In those cases the command may or may not have run. No
// error, message or data holds the API key.
func (c *Client) Run(ctx context.Context, cmd Command) (Reply, error) {
	if err := cmd.check(); err != nil {
		return Reply{Sent: cmd}, err
	}
	start := time.Now()
	reply, err := c.run(ctx, cmd)
	err = c.scrub.RedactError(err)
	// Once more after decoding: an echo escaped in JSON ("\/", "\u003c")
	// reads as the key only now.
	reply.Message, reply.Text = c.scrub.Scrub(reply.Message), c.scrub.Scrub(reply.Text)
	if len(reply.Data) > 0 {
		var v any
		var plain strings.Builder
		enc := json.NewEncoder(&plain)
		enc.SetEscapeHTML(false) // the key's < > & as they are, for Scrub to find
		if json.Unmarshal(reply.Data, &v) == nil && enc.Encode(v) == nil {
			if b := strings.TrimSpace(plain.String()); c.scrub.Scrub(b) != b {
				reply.Data, _ = json.Marshal(c.scrub.Scrub(b)) // what is left of the data, as text
			}
		}
	}
	attrs := []any{"command", cmd.String(), "ok", reply.OK, "seconds", time.Since(start).Seconds()}
	if err != nil {
		attrs = append(attrs, "error", err)
	} else {
		attrs = append(attrs, "message", oneLine(reply.Message))
	}
	c.log.Debug("PowerMTA command", attrs...)
	return reply, err
}

func (c *Client) run(ctx context.Context, cmd Command) (Reply, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(rctx, cmd)
	if err != nil {
		return Reply{Sent: cmd}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Reply{Sent: cmd}, c.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	body, err := c.readBody(resp)
	if err != nil {
		return Reply{Sent: cmd}, c.transportError(ctx, rctx, err)
	}
	// Whatever the reply repeats of the request (a proxy may echo it), the
	// key goes before anything reads it.
	body = []byte(c.scrub.Scrub(string(body)))
	if c.dialect == poller.DialectSeed {
		return parseSeedReply(cmd, resp.StatusCode, resp.Status, body)
	}
	return parsePMTAReply(cmd, resp.StatusCode, resp.Status, body)
}

// newRequest builds the POST: PowerMTA's form (command, format=json) or the
// seed proxy's text body.
func (c *Client) newRequest(ctx context.Context, cmd Command) (*http.Request, error) {
	line := cmd.String()
	body, ct, accept := url.Values{"command": {line}, "format": {"json"}}.Encode(), "application/x-www-form-urlencoded", "application/json"
	if c.dialect == poller.DialectSeed {
		body, ct, accept = line, "text/plain; charset=utf-8", "text/plain"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "pmta-agent")
	if c.apiKey != "" {
		req.Header.Set(poller.APIKeyHeader, c.apiKey)
	}
	return req, nil
}

// errTooLarge names the setting that caps a reply.
func (c *Client) errTooLarge() error {
	return fmt.Errorf("reply larger than %d bytes: refused (api.max_body_bytes)", c.maxBody)
}

// readBody reads at most maxBody bytes of the reply; a longer one is an
// error, said before reading when Content-Length announces it.
func (c *Client) readBody(resp *http.Response) ([]byte, error) {
	if resp.ContentLength > c.maxBody {
		return nil, c.errTooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, c.errTooLarge()
	}
	return body, nil
}

// transportError names a timeout as such: the bare "context deadline
// exceeded" does not tell an operator that PowerMTA was too slow.
func (c *Client) transportError(parent, rctx context.Context, err error) error {
	if parent.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s (api.timeout): %w", c.timeout, err)
	}
	return err
}

// newScrubber returns the Redactor of the API key. A key shorter than 8
// characters (PowerMTA asks for 32) is not scrubbed: replacing it would
// garble every message while protecting next to nothing.
func newScrubber(key string) redact.Redactor {
	if len(key) < 8 {
		return redact.Redactor{}
	}
	return redact.New(key)
}
