package poller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// errForbidden is what PowerMTA's 403 means: http-access (default "none")
// does not list this host, and no X-API-Key (which grants access from
// anywhere) was sent or the one sent is not configured.
var errForbidden = errors.New("403 Forbidden: this host is not in PowerMTA's http-access list and no valid X-API-Key was sent")

const apiKeyHeader = "X-API-Key"

// newHTTPClient returns the client used for every request. Redirects are
// followed (PowerMTA 5.0 sends plain HTTP to HTTPS) but the API key is
// dropped when one leads to another host or down from HTTPS to HTTP. The
// per-request deadline comes from the context, so the client has no Timeout
// of its own.
func newHTTPClient(tlsCfg *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	// Four endpoints are fetched at once each round; keep a connection
	// for each between rounds.
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport:     tr,
		CheckRedirect: checkRedirect,
	}
}

// checkRedirect keeps the API key on the configured host only. Go's client
// strips Authorization and cookies on a cross-host redirect, but copies any
// other header, X-API-Key included.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0].URL
	if !strings.EqualFold(req.URL.Hostname(), first.Hostname()) ||
		(first.Scheme == "https" && req.URL.Scheme != "https") {
		req.Header.Del(apiKeyHeader)
	}
	return nil
}

// fetch GETs one endpoint and returns its body. Everything, the body
// included, happens within the configured timeout.
func (p *Poller) fetch(ctx context.Context, ep endpoint) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, ep.url, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", ep.accept)
	req.Header.Set("User-Agent", "pmta-agent")
	if p.cfg.APIKey != "" {
		req.Header.Set(apiKeyHeader, p.cfg.APIKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, p.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return nil, errForbidden
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", p.transportError(ctx, rctx, err))
	}
	if int64(len(body)) > p.maxBody {
		return nil, fmt.Errorf("reply larger than %d bytes: refused", p.maxBody)
	}
	return body, nil
}

// transportError names a timeout as such: the bare "context deadline
// exceeded" does not tell an operator that PowerMTA was too slow.
func (p *Poller) transportError(parent, rctx context.Context, err error) error {
	if parent.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s (timeout): %w", p.cfg.Timeout, err)
	}
	return err
}
