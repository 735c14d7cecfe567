package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/ratelog"
)

var (
	_ agent.Source        = (*Poller)(nil)
	_ agent.Gatherer      = (*Poller)(nil)
	_ agent.StatsReporter = (*Poller)(nil)
	_ agent.Closer        = (*Poller)(nil)
)

// Endpoint kinds, also used as the endpoint names in errors and logs.
const (
	kindStatus  = "status"
	kindQueues  = "queues"
	kindDomains = "domains"
	kindVMTAs   = "vmtas"
)

// endpoint is one URL polled each round and the parser for its reply.
type endpoint struct {
	kind   string
	url    string
	logURL string // url with any password redacted
	accept string
	parse  func(io.Reader) (parsed, error)
}

// parsed is what one endpoint yielded: exactly one member is set.
type parsed struct {
	status *status
	seed   *seedStatus
	list   *listing
}

// Poller polls the PowerMTA HTTP management interface. It is an agent.Source
// (Run), an agent.Gatherer (Gather, one round) and an agent.StatsReporter.
type Poller struct {
	cfg       Config
	log       *slog.Logger
	client    *http.Client
	endpoints []endpoint

	// now gives point timestamps and the time base of rates and log
	// rate-limiting; tests replace it.
	now func() time.Time
	// maxBody caps one reply (cfg.MaxBodyBytes); tests lower it.
	maxBody int64

	mu         sync.Mutex // serialises rounds; guards what follows
	rates      rateState
	failLogs   map[string]*ratelog.Episode
	skipLogs   map[string]*ratelog.Episode
	badLog     ratelog.Episode
	missingLog ratelog.Episode

	statsMu sync.Mutex
	stats   stats
}

// stats are the poller's own health counters (see Stats).
type stats struct {
	polls, errors, lastSuccessUnix, up, restarts, rowsSkipped, fieldsMissing int64
	lastDuration                                                             float64
}

// New validates cfg, applies its defaults and builds the HTTP client. log
// receives failures and state changes; it must not be nil.
func New(cfg Config, log *slog.Logger) (*Poller, error) {
	if log == nil {
		return nil, fmt.Errorf("api poller: a logger is required")
	}
	cfg = cfg.withDefaults()
	if err := errors.Join(cfg.Validate()...); err != nil {
		return nil, fmt.Errorf("api poller config: %w", err)
	}
	base, _ := url.Parse(strings.TrimSpace(cfg.URL)) // checked by Validate
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("api poller config: tls: %w", err)
	}
	p := &Poller{
		cfg:      cfg,
		log:      log,
		client:   newHTTPClient(tlsCfg),
		now:      time.Now,
		maxBody:  int64(cfg.MaxBodyBytes),
		failLogs: map[string]*ratelog.Episode{},
		skipLogs: map[string]*ratelog.Episode{},
	}
	p.missingLog.Every, p.badLog.Every = logEvery, logEvery
	p.endpoints = buildEndpoints(cfg, base)
	return p, nil
}

// buildEndpoints lists the enabled endpoints of the configured dialect, in
// the order their points appear in a batch.
func buildEndpoints(cfg Config, base *url.URL) []endpoint {
	type spec struct {
		kind       string
		on         bool
		seedPath   string
		seedAccept string
		seed       func(io.Reader) (parsed, error)
		json, xml  func(io.Reader) (parsed, error)
	}
	specs := []spec{
		{kindStatus, cfg.Endpoints.Status, "status.json", "application/json", seedStatusParser, statusParser(parseStatusJSON), statusParser(parseStatusXML)},
		{kindQueues, cfg.Endpoints.Queues, "queue.csv", "text/csv", listParser(parseSeedQueues), listParser(parseQueuesJSON), listParser(parseQueuesXML)},
		{kindDomains, cfg.Endpoints.Domains, "domain.csv", "text/csv", listParser(parseSeedDomains), listParser(parseDomainsJSON), listParser(parseDomainsXML)},
		{kindVMTAs, cfg.Endpoints.VMTAs, "vmta.csv", "text/csv", listParser(parseSeedVMTAs), listParser(parseVMTAsJSON), listParser(parseVMTAsXML)},
	}
	var eps []endpoint
	for _, s := range specs {
		if !s.on {
			continue
		}
		if cfg.Dialect == DialectSeed {
			u := base.JoinPath(s.seedPath)
			eps = append(eps, endpoint{kind: s.kind, url: u.String(), logURL: u.Redacted(), accept: s.seedAccept, parse: s.seed})
			continue
		}
		u := base.JoinPath(s.kind)
		q := url.Values{"format": {cfg.Format}}
		if s.kind != kindStatus && cfg.MaxItems > 0 {
			q.Set("maxitems", strconv.Itoa(cfg.MaxItems))
		}
		u.RawQuery = q.Encode()
		ep := endpoint{kind: s.kind, url: u.String(), logURL: u.Redacted(), accept: "application/json", parse: s.json}
		if cfg.Format == FormatXML {
			ep.accept, ep.parse = "application/xml, text/xml", s.xml
		}
		eps = append(eps, ep)
	}
	return eps
}

func statusParser(parse func(io.Reader) (status, error)) func(io.Reader) (parsed, error) {
	return func(r io.Reader) (parsed, error) {
		s, err := parse(r)
		if err != nil {
			return parsed{}, err
		}
		return parsed{status: &s}, nil
	}
}

func seedStatusParser(r io.Reader) (parsed, error) {
	s, err := parseSeedStatus(r)
	if err != nil {
		return parsed{}, err
	}
	return parsed{seed: &s}, nil
}

func listParser(parse func(io.Reader) (listing, error)) func(io.Reader) (parsed, error) {
	return func(r io.Reader) (parsed, error) {
		l, err := parse(r)
		if err != nil {
			return parsed{}, err
		}
		return parsed{list: &l}, nil
	}
}

// Name implements agent.Source.
func (p *Poller) Name() string { return "api" }

// Component implements agent.StatsReporter.
func (p *Poller) Component() string { return "api" }

// Stats implements agent.StatsReporter: polls (rounds run), errors (failed
// endpoint requests), last_success_unix (last round in which every enabled
// endpoint answered), last_duration_s, up, pmta_restarts (restarts and
// counter resets seen), rows_skipped (listing rows that could not be read or
// were beyond the maxRows kept) and fields_missing (documented keys of the
// seed status.json that were absent or unreadable, one per key and round).
func (p *Poller) Stats() []agent.Field {
	p.statsMu.Lock()
	s := p.stats
	p.statsMu.Unlock()
	return []agent.Field{
		{Key: "polls", Value: s.polls},
		{Key: "errors", Value: s.errors},
		{Key: "last_success_unix", Value: s.lastSuccessUnix},
		{Key: "last_duration_s", Value: s.lastDuration},
		{Key: "up", Value: s.up},
		{Key: "pmta_restarts", Value: s.restarts},
		{Key: "rows_skipped", Value: s.rowsSkipped},
		{Key: "fields_missing", Value: s.fieldsMissing},
	}
}

// Close releases idle connections. It is safe to call without Run.
func (p *Poller) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

// Run gathers a round every Interval (plus a random delay up to Jitter) and
// hands each batch to emit, until ctx is done. Failures are counted, logged
// and reported as up=0; Run itself only returns, with nil, when ctx ends.
func (p *Poller) Run(ctx context.Context, emit func(agent.Batch)) error {
	next := time.Now()
	for {
		if !sleep(ctx, p.jitter()) {
			return nil
		}
		start := time.Now()
		b, err := p.Gather(ctx) // Gather logs and counts what failed
		if ctx.Err() != nil {
			// A round cut short by shutdown says nothing about PowerMTA.
			return nil
		}
		p.log.Debug("api poll", "points", len(b.Points), "took", time.Since(start), "ok", err == nil)
		emit(b)
		// Keep to the schedule; skip slots a slow round ran over.
		now := time.Now()
		next = next.Add(p.cfg.Interval)
		if !next.After(now) {
			missed := now.Sub(next)/p.cfg.Interval + 1
			next = next.Add(missed * p.cfg.Interval)
		}
		if !sleep(ctx, next.Sub(now)) {
			return nil
		}
	}
}

func (p *Poller) jitter() time.Duration {
	if p.cfg.Jitter <= 0 {
		return 0
	}
	return rand.N(p.cfg.Jitter + 1)
}

// sleep waits for d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
