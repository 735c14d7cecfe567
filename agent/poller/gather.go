package poller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/ratelog"
)

// Gather runs one round: it fetches and parses every enabled endpoint, one
// after the other so that a round never holds more than one reply in the
// making, and returns their points, all stamped with the poll time. The
// batch always holds a pmta_status point whose up field is 1 only when every
// enabled endpoint answered with a readable document. The error joins one
// error per failing endpoint; the points of the endpoints that worked are
// returned all the same.
func (p *Poller) Gather(ctx context.Context) (agent.Batch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	started := time.Now()

	type outcome struct {
		res    parsed
		points []agent.Point // of a listing, built right after its fetch so the rows can go
		err    error
	}
	outs := make([]outcome, len(p.endpoints))
	for i, ep := range p.endpoints {
		if ctx.Err() != nil {
			break
		}
		o := &outs[i]
		o.res, o.err = p.fetch(ctx, ep)
		if l := o.res.list; l != nil {
			o.points = listPoints(ep.kind, l.rows, t)
			l.rows = nil
		}
	}

	batch := agent.Batch{Source: p.Name()}
	if err := ctx.Err(); err != nil {
		// Shutting down: what failed failed because of us, so it is
		// neither counted nor logged, and no rate state moves.
		batch.Points = []agent.Point{statusPoint(0, nil, t)}
		return batch, fmt.Errorf("api poll cancelled: %w", err)
	}

	var (
		errs          []error
		statusFields  []agent.Field
		lists         []agent.Point
		skipped       int
		fieldsMissing int
		restarted     bool
	)
	for i, ep := range p.endpoints {
		o := outs[i]
		if o.err != nil {
			errs = append(errs, fmt.Errorf("api %s: %w", ep.kind, o.err))
			p.noteFailure(ep, o.err, t)
			continue
		}
		p.noteSuccess(ep, t)
		switch {
		case o.res.status != nil:
			statusFields, restarted = p.pmtaStatusFields(o.res.status, t)
		case o.res.seed != nil:
			statusFields = o.res.seed.fields()
			fieldsMissing += len(o.res.seed.missing) + len(o.res.seed.unreadable)
			p.noteFieldsMissing(ep, o.res.seed, t)
		case o.res.list != nil:
			l := o.res.list
			skipped += l.skipped + l.dropped
			p.noteSkipped(ep, l, t)
			lists = append(lists, o.points...)
		}
	}

	up := int64(0)
	if len(errs) == 0 {
		up = 1
	}
	batch.Points = make([]agent.Point, 0, 1+len(lists))
	batch.Points = append(batch.Points, statusPoint(up, statusFields, t))
	batch.Points = append(batch.Points, lists...)

	p.statsMu.Lock()
	p.stats.polls++
	p.stats.errors += int64(len(errs))
	p.stats.up = up
	if up == 1 {
		p.stats.lastSuccessUnix = t.Unix()
	}
	p.stats.lastDuration = time.Since(started).Seconds()
	p.stats.rowsSkipped += int64(skipped)
	p.stats.fieldsMissing += int64(fieldsMissing)
	if restarted {
		p.stats.restarts++
	}
	p.statsMu.Unlock()
	return batch, errors.Join(errs...)
}

// statusPoint is the round's pmta_status point: up first, then what /status
// gave. The pipeline adds the server tag.
func statusPoint(up int64, fields []agent.Field, t time.Time) agent.Point {
	all := make([]agent.Field, 0, 1+len(fields))
	all = append(all, agent.Field{Key: "up", Value: up})
	all = append(all, fields...)
	return agent.NewPoint("pmta_status", nil, all, t)
}

func listPoints(kind string, rows []listRow, t time.Time) []agent.Point {
	switch kind {
	case kindQueues:
		return queuePoints(rows, t)
	case kindDomains:
		return domainPoints(rows, t)
	case kindVMTAs:
		return vmtaPoints(rows, t)
	}
	return nil
}

// pmtaStatusFields returns the pmta_status fields of a /status reply plus
// the rates since the previous reply, and whether a restart was seen.
func (p *Poller) pmtaStatusFields(s *status, t time.Time) ([]agent.Field, bool) {
	fields, bad := s.fields()
	if len(bad) > 0 {
		if logNow, _, n, _ := p.badLog.Hit(t); logNow {
			p.log.Warn("PowerMTA status holds values that cannot be read; they are left out",
				"fields", bad, "times_since_last_log", n)
		}
	} else {
		p.badLog.End(t)
	}
	rates, restart := p.rates.observe(s.counters(), t)
	if restart != "" {
		p.log.Info("PowerMTA restart or counter reset detected; no rates this round", "reason", restart)
		return fields, true
	}
	return append(fields, rates...), false
}

// noteFailure logs a failing endpoint when it starts failing and then at
// most once per logEvery while it keeps failing.
func (p *Poller) noteFailure(ep endpoint, err error, t time.Time) {
	l := p.failLogs[ep.kind]
	if l == nil {
		l = &ratelog.Episode{Every: logEvery}
		p.failLogs[ep.kind] = l
	}
	logNow, first, n, since := l.Hit(t)
	switch {
	case !logNow:
	case first:
		p.log.Warn("PowerMTA API endpoint failing", "endpoint", ep.kind, "url", ep.logURL, "error", err)
	default:
		p.log.Warn("PowerMTA API endpoint still failing", "endpoint", ep.kind, "url", ep.logURL,
			"error", err, "failing_for", t.Sub(since).Round(time.Second), "failures_since_last_log", n)
	}
}

// noteSuccess logs the recovery of an endpoint that was failing.
func (p *Poller) noteSuccess(ep endpoint, t time.Time) {
	l := p.failLogs[ep.kind]
	if l == nil {
		return
	}
	if recovered, downFor := l.End(t); recovered {
		p.log.Info("PowerMTA API endpoint answering again", "endpoint", ep.kind, "url", ep.logURL,
			"down_for", downFor.Round(time.Second))
	}
}

// noteSkipped logs listing rows that could not be read or were beyond the
// maxRows kept, rate-limited like failures.
func (p *Poller) noteSkipped(ep endpoint, lst *listing, t time.Time) {
	l := p.skipLogs[ep.kind]
	if l == nil {
		l = &ratelog.Episode{Every: logEvery}
		p.skipLogs[ep.kind] = l
	}
	if lst.skipped == 0 && lst.dropped == 0 {
		l.End(t)
		return
	}
	logNow, _, _, _ := l.Hit(t)
	switch {
	case !logNow:
	case lst.dropped > 0:
		p.log.Warn("PowerMTA listing is longer than the agent keeps; the rest is left out",
			"endpoint", ep.kind, "rows_kept", maxRows, "rows_left_out", lst.dropped, "rows_unreadable", lst.skipped)
	default:
		p.log.Warn("PowerMTA listing has rows that cannot be read; they are skipped",
			"endpoint", ep.kind, "rows_skipped", lst.skipped)
	}
}

// noteFieldsMissing logs documented seed status keys that were absent or
// unreadable, once when that starts and then at most every logEvery.
func (p *Poller) noteFieldsMissing(ep endpoint, s *seedStatus, t time.Time) {
	if len(s.missing) == 0 && len(s.unreadable) == 0 {
		p.missingLog.End(t)
		return
	}
	if logNow, _, _, _ := p.missingLog.Hit(t); logNow {
		p.log.Warn("seed status.json lacks documented fields; the others are used",
			"endpoint", ep.kind, "url", ep.logURL, "missing", s.missing, "unreadable", s.unreadable)
	}
}

// logEvery is the longest a persisting problem stays silent in the log.
const logEvery = 10 * time.Minute
