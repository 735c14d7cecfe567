package poller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/transport"
)

// errForbidden is what PowerMTA's 403 means: http-access (default "none")
// does not list this host, and no X-API-Key (which grants access from
// anywhere) was sent or the one sent is not configured.
var errForbidden = errors.New("403 Forbidden: this host is not in PowerMTA's http-access list and no valid X-API-Key was sent")

const apiKeyHeader = "X-API-Key"

// newHTTPClient returns the client used for every request. Redirects are
// followed (PowerMTA 5.0 sends plain HTTP to HTTPS) but the API key goes
// only to the configured origin (see checkRedirect). The per-request
// deadline comes from the context, so the client has no Timeout of its own.
// Endpoints are fetched one after the other, so the transport's default of
// two idle connections per host is plenty.
func newHTTPClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{
		Transport:     transport.NewHTTP(tlsCfg),
		CheckRedirect: checkRedirect,
	}
}

// checkRedirect keeps the API key only on a request to the configured
// origin. Go's client strips Authorization and cookies on a cross-host
// redirect, but copies any other header, X-API-Key included, and it counts
// another port of the same host as the same host: whatever listens there
// is not necessarily PowerMTA. Each hop starts again from the headers of
// the first request, so a hop back to the origin carries the key again.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if !keyMayFollow(via[0].URL, req.URL) {
		req.Header.Del(apiKeyHeader)
	}
	return nil
}

// keyMayFollow reports whether a request to to may carry the API key meant
// for from, the configured URL: only when scheme, host and port are the
// same, or for PowerMTA 5's upgrade of http://host:port to https://host:port
// (same host, same port, now encrypted). Anything else, https → http
// included, may be someone else.
func keyMayFollow(from, to *url.URL) bool {
	if !strings.EqualFold(from.Hostname(), to.Hostname()) || port(from) != port(to) {
		return false
	}
	fs, ts := strings.ToLower(from.Scheme), strings.ToLower(to.Scheme)
	return fs == ts || (fs == "http" && ts == "https")
}

// port returns u's port, or the scheme's default when it has none.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// fetch GETs one endpoint and parses the reply as it arrives: at no point is
// the whole body in memory, and no more than maxBody bytes of it are read.
// Everything, the body included, happens within the configured timeout.
func (p *Poller) fetch(ctx context.Context, ep endpoint) (parsed, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, ep.url, nil)
	if err != nil {
		return parsed{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", ep.accept)
	req.Header.Set("User-Agent", "pmta-agent")
	if p.cfg.APIKey != "" {
		req.Header.Set(apiKeyHeader, p.cfg.APIKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return parsed{}, p.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return parsed{}, errForbidden
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return parsed{}, fmt.Errorf("HTTP %s", resp.Status)
	}
	tooLarge := fmt.Errorf("reply larger than %d bytes: refused (api.max_body_bytes)", p.maxBody)
	if resp.ContentLength > p.maxBody {
		return parsed{}, tooLarge // said so up front: no need to read any of it
	}
	body := &cappedBody{r: resp.Body, left: p.maxBody}
	res, err := ep.parse(body)
	if err == nil {
		// The document ended: whatever follows it still counts against
		// the cap (a reply is refused by its size, not by where the
		// parser stopped), and draining it lets the connection be reused.
		_, err = io.Copy(io.Discard, body)
	}
	switch {
	case body.over:
		return parsed{}, tooLarge
	case body.err != nil:
		// The parser only saw the body end early; say why.
		return parsed{}, fmt.Errorf("read body: %w", p.transportError(ctx, rctx, body.err))
	case err != nil:
		return parsed{}, err
	}
	return res, nil
}

// cappedBody hands out at most left bytes of a reply. It remembers whether
// the reply held more (over) and the first error of the connection itself
// (err), so that fetch can report those rather than what the parser made of
// a body that stopped short.
type cappedBody struct {
	r    io.Reader
	left int64
	over bool
	err  error
}

// errOverCap is what the parser sees when the cap is reached; fetch replaces
// it with the message naming the setting.
var errOverCap = errors.New("reply over the size cap")

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, errOverCap
	}
	if b.left <= 0 {
		// Exactly at the cap: the reply is fine if it ends here.
		var one [1]byte
		n, err := io.ReadFull(b.r, one[:])
		if n > 0 {
			b.over = true
			return 0, errOverCap
		}
		return 0, b.note(err)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, b.note(err)
}

// note keeps the first error that is not the end of the body. A body cut
// short (fewer bytes than Content-Length, or no last chunk) reads as
// io.ErrUnexpectedEOF and is kept too.
func (b *cappedBody) note(err error) error {
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return err
}

// transportError names a timeout as such: the bare "context deadline
// exceeded" does not tell an operator that PowerMTA was too slow.
func (p *Poller) transportError(parent, rctx context.Context, err error) error {
	if parent.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s (timeout): %w", p.cfg.Timeout, err)
	}
	return err
}
