package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/impact"
)

// watchedChanges is the pmta_config source with, when the accounting
// source is on, the impact of each change it finds: the watcher's events
// go out as they are, and each config_change is also handed to the
// impact.Runner, which runs beside the watcher (its own goroutine: one
// analysis at a time, never in the way of the watcher, the tailer or the
// pipeline) and emits pmta_impact points through the same pipeline.
//
// Being one source with the watcher, it is rebuilt with it on a reload
// that changes pmta.* (pmta.impact_window and pmta.impact_every included):
// the new runner schedules again from the journal and the state of the
// finals made, so no change is lost or measured twice for good. The
// accounting globs, source_ips, pools and the ISP map it reads are those
// of the configuration it was built from.
type watchedChanges struct {
	*confwatch.Watcher
	impact *impact.Runner
}

var (
	_ agent.Source        = (*watchedChanges)(nil)
	_ agent.StatsReporter = (*watchedChanges)(nil)
)

// withImpact returns w, with the impact runner of cfg when the accounting
// source is on.
func withImpact(cfg config.Config, w *confwatch.Watcher, log *slog.Logger) (agent.Source, error) {
	if !cfg.Acct.Enabled {
		return w, nil
	}
	r, err := newImpactRunner(cfg, log)
	if err != nil {
		return nil, err
	}
	return &watchedChanges{Watcher: w, impact: r}, nil
}

// newImpactRunner builds the runner of cfg: pmta.impact_window and
// pmta.impact_every, the accounting globs matched again at each run, the
// journal's changes at start, and its state beside the journal.
func newImpactRunner(cfg config.Config, log *slog.Logger) (*impact.Runner, error) {
	globs := slices.Clone(cfg.Acct.Globs)
	r, err := impact.NewRunner(impact.RunnerConfig{
		Window:    cfg.PMTA.ImpactWindow,
		Every:     cfg.PMTA.ImpactEvery,
		Server:    cfg.Server,
		Files:     func() ([]string, error) { return acct.GlobFiles(globs) },
		Macros:    func() map[string]string { return domainMacros(cfg) },
		ISP:       agent.NewISPMap(cfg.Pipeline.ISPMap),
		Options:   impact.Options{SourceIPs: cfg.Acct.SourceIPs, Pools: cfg.Acct.Pools},
		Journal:   func() ([]impact.Change, error) { return journalChanges(cfg.StateDir) },
		StatePath: impactStatePath(cfg.StateDir),
	}, log)
	if err != nil {
		return nil, fmt.Errorf("pmta.impact_window: %w", err)
	}
	return r, nil
}

// impactStatePath is where the runner records the finals made: beside the
// journal of changes.
func impactStatePath(stateDir string) string {
	return filepath.Join(filepath.Dir(confwatch.JournalPath(stateDir)), "impact.json")
}

// Run runs the watcher and the runner until ctx ends.
func (s *watchedChanges) Run(ctx context.Context, emit func(agent.Batch)) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.impact.Run(ctx, emit) }) // returns only when ctx ends
	err := s.Watcher.Run(ctx, func(b agent.Batch) {
		emit(b)
		s.impact.Add(changesOf(b.Points)...)
	})
	wg.Wait()
	return err
}

// Stats are the watcher's and the runner's (impact_*).
func (s *watchedChanges) Stats() []agent.Field {
	return append(s.Watcher.Stats(), s.impact.Stats()...)
}

// changesOf reads the config_change events of a batch of the watcher's.
func changesOf(points []agent.Point) []impact.Change {
	var out []impact.Change
	for i := range points {
		p := &points[i]
		if kind, _ := p.TagValue("kind"); p.Measurement != "pmta_event" || kind != confwatch.Kind {
			continue
		}
		block, _ := p.TagValue("block")
		directive, _ := p.TagValue("directive")
		text, _ := p.FieldValue("change")
		s, _ := text.(string)
		key, _ := p.FieldValue("key")
		k, _ := key.(string)
		out = append(out, impact.Change{Time: p.Time, Block: block, Directive: directive, Key: k, Text: s})
	}
	return out
}

// journalChanges reads every change of the journal under stateDir, oldest
// first; none when there is no journal. A torn or foreign line is skipped,
// as confwatch.LatestChange skips it.
func journalChanges(stateDir string) ([]impact.Change, error) {
	f, err := os.Open(confwatch.JournalPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("change journal: %w", err)
	}
	defer f.Close()
	var out []impact.Change
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e confwatch.Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && !e.Time.IsZero() {
			out = append(out, impact.Change{Time: e.Time, Block: e.Block, Directive: e.Directive, Key: e.Key, Text: e.Change})
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("change journal: %w", err)
	}
	return out, nil
}
