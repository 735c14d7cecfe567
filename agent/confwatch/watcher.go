// Package confwatch watches PowerMTA's configuration — the main file and
// every file it includes — and turns each change into a pmta_event point of
// kind config_change, in PowerMTA's own terms ("<domain $gmail>
// max-msg-rate 250/h → 500/h"), secrets masked, and a log line. Dashboards
// show the points as an annotation layer, so that a change in delivery can
// be read next to the configuration change that caused it.
//
// It polls: every Interval it hashes every file of the include set (see
// pmtaconf.Files), and only when a hash or the set differs does it parse
// and diff (pmtaconf.Diff) against the last good version. Polling rather
// than inotify finds an edit however the editor saves (in place, or a
// rename into place), a file an include pattern starts to match, and an
// include removed, with no watch to re-arm; at the default 30 s it costs a
// few small reads.
//
// A configuration that cannot be read or parsed is counted and logged (at
// most once per logEvery while it lasts); the last good version stays the
// baseline, so the change is reported once the file is whole again. An edit
// reverted between two checks is no change: the content is the same.
package confwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
	"github.com/pmta-agent/pmta-agent/agent/ratelog"
	"github.com/pmta-agent/pmta-agent/agent/redact"
)

// Config is what the watcher needs: where PowerMTA's configuration is and
// how often to look.
type Config struct {
	// Path is PowerMTA's main configuration file (pmtaconf.DefaultPath
	// when empty); the files it includes are found from it.
	Path string
	// Interval is how often the files are checked (30 s when zero).
	Interval time.Duration
	// StateDir, when set, is the agent's state_dir: each change reported
	// is also appended to the journal <StateDir>/pmta_config/changes.jsonl
	// (see JournalPath), where pmta-agent impact finds the latest one.
	StateDir string
}

// DefaultConfig returns the defaults: the stock path, a check every 30 s.
func DefaultConfig() Config {
	return Config{Path: pmtaconf.DefaultPath, Interval: 30 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Path == "" {
		c.Path = d.Path
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	return c
}

// Validate reports every problem of the settings, each starting with its
// key ("interval: …").
// MinInterval is the shortest Interval: PowerMTA's configuration changes
// by hand.
const MinInterval = 100 * time.Millisecond

func (c Config) Validate() []error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: must be a positive duration such as 30s (is %s)", c.Interval))
	} else if c.Interval > 0 && c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("interval: %s is too short; PowerMTA's configuration changes by hand (30s is the default)", c.Interval))
	}
	return errs
}

const (
	// MaxEvents bounds the points (and log lines) of one check: a
	// configuration replaced wholesale yields MaxEvents changes and one
	// summary event "N more changes", not a flood.
	MaxEvents = 1000
	// maxFieldBytes bounds each string field of a point (a long
	// domain-macro list); the change text in the log is bounded alike.
	maxFieldBytes = 4096
	// logEvery is how often a lasting failure to read the configuration is
	// logged again.
	logEvery = 10 * time.Minute
	// minSecret is the shortest secret scrubbed from error texts: a
	// shorter one would garble every message while protecting little.
	minSecret = 4
)

// Watcher is the source. Check is safe to call concurrently with Stats;
// Run calls it on a ticker, tests call it directly.
type Watcher struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex // one check at a time; guards the fields below
	emit   func(agent.Batch)
	files  []pmtaconf.File // the last good version: its files and tree
	root   *pmtaconf.Block
	scrub  redact.Redactor // the secrets of the last good version
	errLog ratelog.Episode

	checks, changes, errors, eventsFolded atomic.Int64
	lastCheck, lastChange, lastError      atomic.Int64 // Unix s
	filesWatched                          atomic.Int64
}

var (
	_ agent.Source        = (*Watcher)(nil)
	_ agent.StatsReporter = (*Watcher)(nil)
)

// New validates cfg and applies its defaults; it reads nothing yet (Run's
// first check, or the first Check, takes the baseline). log must not be nil.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		return nil, errors.New("config watcher: a logger is required")
	}
	if err := errors.Join(cfg.Validate()...); err != nil {
		return nil, fmt.Errorf("config watcher config: %w", err)
	}
	cfg = cfg.withDefaults()
	w := &Watcher{cfg: cfg, log: log.With("component", "pmta_config", "path", cfg.Path), now: time.Now}
	w.errLog.Every = logEvery
	return w, nil
}

// Name implements agent.Source.
func (w *Watcher) Name() string { return "pmta_config" }

// Component implements agent.StatsReporter.
func (w *Watcher) Component() string { return "pmta_config" }

// Stats implements agent.StatsReporter: checks (rounds run), changes
// (configuration changes found, each one event, including those folded
// into a summary), events_folded (changes beyond MaxEvents in one check,
// reported only by count), errors (checks that could not read or parse the
// configuration), files (the files of the last good version: the main
// file and its includes), last_check_unix, last_change_unix (the last
// check that found a change) and last_error_unix, 0 for never.
func (w *Watcher) Stats() []agent.Field {
	return []agent.Field{
		{Key: "checks", Value: w.checks.Load()},
		{Key: "changes", Value: w.changes.Load()},
		{Key: "events_folded", Value: w.eventsFolded.Load()},
		{Key: "errors", Value: w.errors.Load()},
		{Key: "files", Value: w.filesWatched.Load()},
		{Key: "last_check_unix", Value: w.lastCheck.Load()},
		{Key: "last_change_unix", Value: w.lastChange.Load()},
		{Key: "last_error_unix", Value: w.lastError.Load()},
	}
}

// Run checks at once (taking the baseline) and then every Interval, handing
// the events of each check that found changes to emit, until ctx ends. It
// only returns, with nil, when ctx ends: failures are counted and logged.
func (w *Watcher) Run(ctx context.Context, emit func(agent.Batch)) error {
	w.mu.Lock()
	w.emit = emit
	w.mu.Unlock()
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		_, _ = w.Check(ctx) // Check counts and logs its failures
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// SetEmit sets where Check hands its events when Run is not used (tests,
// a caller stepping the watcher itself). Without it Check only returns and
// logs the changes.
func (w *Watcher) SetEmit(emit func(agent.Batch)) {
	w.mu.Lock()
	w.emit = emit
	w.mu.Unlock()
}

// Check runs one round: it hashes the configuration's files and, when they
// differ from the last good version, parses them, diffs, emits one event a
// change and logs each. The first successful check only takes the baseline.
// It returns the changes found (all of them, even beyond MaxEvents) and the
// error that made this round fail, which it has counted and logged already.
func (w *Watcher) Check(ctx context.Context) ([]pmtaconf.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.checks.Add(1)
	w.lastCheck.Store(now.Unix())
	files, err := pmtaconf.Files(w.cfg.Path)
	if err != nil {
		return nil, w.failed(now, err)
	}
	if w.root != nil && slices.Equal(files, w.files) {
		w.recovered(now)
		return nil, nil
	}
	root, err := pmtaconf.Load(w.cfg.Path)
	if err != nil {
		return nil, w.failed(now, err)
	}
	// A file written while it was read: the tree may not match the hashes.
	// Leave the baseline as it is; the next check reads the settled files.
	if again, err := pmtaconf.Files(w.cfg.Path); err != nil || !slices.Equal(again, files) {
		return nil, nil
	}
	w.recovered(now)
	first := w.root == nil
	var changes []pmtaconf.Change
	if !first {
		changes = pmtaconf.Diff(w.root, root)
	}
	w.files, w.root = files, root
	w.filesWatched.Store(int64(len(files)))
	w.scrub = redact.New(secrets(root)...)
	if first {
		w.log.Debug("PowerMTA configuration read", "files", len(files))
		return nil, nil
	}
	if len(changes) > 0 {
		w.changes.Add(int64(len(changes)))
		w.lastChange.Store(now.Unix())
		w.report(now, changes)
	}
	return changes, nil
}

// failed counts err and logs it if a line is due; the text is scrubbed of
// the last good version's secrets, since a parse error may quote its line.
func (w *Watcher) failed(now time.Time, err error) error {
	w.errors.Add(1)
	w.lastError.Store(now.Unix())
	err = w.scrub.RedactError(err)
	if due, _, held, since := w.errLog.Hit(now); due {
		attrs := []any{"err", err}
		if held > 0 {
			attrs = append(attrs, "failed_checks_not_logged", held, "failing_since", since.UTC().Format(time.RFC3339))
		}
		w.log.Warn("cannot read PowerMTA configuration; keeping the last good version", attrs...)
	}
	return err
}

func (w *Watcher) recovered(now time.Time) {
	if ended, lasted := w.errLog.End(now); ended {
		w.log.Info("PowerMTA configuration readable again", "after", lasted.Round(time.Second))
	}
}

// secrets are the configuration's secrets long enough to scrub, the
// longest first so that a secret goes before a part of it.
func secrets(root *pmtaconf.Block) []string {
	var out []string
	for _, s := range pmtaconf.Secrets(root) {
		if len(s) >= minSecret {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}
