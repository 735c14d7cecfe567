package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

// reloader applies the configuration file again on SIGHUP (systemctl
// reload): what can change while the agent runs — the sources, the
// pipeline's tags, caps and ISP rules, the log level, the memory limit, and
// what PowerMTA's own configuration gives — changes; the sinks with their
// queues, the listener and the state directory stay as they are, and each
// such setting that changed is named in the log. The accounting tailer
// hands over its positions through its checkpoint, so that nothing is read
// twice or skipped; the queues are never touched. A file that does not
// load or validate changes nothing.
type reloader struct {
	path  string // -config
	cur   config.Config
	level *slog.LevelVar
	log   *slog.Logger
	b     *built
	sd    sdNotifier
}

// watch reloads on each signal from hups until ctx ends.
func (r *reloader) watch(ctx context.Context, hups <-chan os.Signal) {
	for {
		select {
		case <-hups:
			r.reload(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// fixedSettings are the settings that keep their value until a restart,
// each with why.
var fixedSettings = []struct {
	key string
	get func(*config.Config) any
	why string
}{
	{"state_dir", func(c *config.Config) any { return &c.StateDir }, "the queues and the checkpoint live there"},
	{"log_format", func(c *config.Config) any { return &c.LogFormat }, "log lines keep one shape for the life of the process"},
	{"shutdown_timeout", func(c *config.Config) any { return &c.ShutdownTimeout }, "the engine was built with it"},
	{"self_interval", func(c *config.Config) any { return &c.SelfInterval }, "the engine was built with it"},
	{"listen", func(c *config.Config) any { return &c.Listen }, "the listener keeps its address"},
	{"api.interval", func(c *config.Config) any { return &c.API.Interval }, "/readyz's staleness is three of the intervals at start"},
	{"acct.interval", func(c *config.Config) any { return &c.Acct.Interval }, "the checkpoint's open intervals are on its grid"},
	{"relay", func(c *config.Config) any { return &c.Relay }, "its allow-list and limits are read at start (the tokens file is read again)"},
	{"sinks.stdout", func(c *config.Config) any { return &c.Sinks.Stdout }, "a sink keeps its queue and its connection"},
	{"sinks.influx", func(c *config.Config) any { return &c.Sinks.Influx }, "a sink keeps its queue and its connection"},
	{"sinks.otlp", func(c *config.Config) any { return &c.Sinks.OTLP }, "a sink keeps its queue and its connection"},
}

// reload loads the configuration again and applies it.
func (r *reloader) reload(ctx context.Context) {
	started := time.Now()
	r.notify("RELOADING=1")
	defer func() {
		if ctx.Err() == nil { // not once stopping: STOPPING=1 is the last word
			r.notify("READY=1")
		}
	}()
	r.log.Info("SIGHUP: reloading the configuration", "config", r.path)
	next, err := loadConfig(r.path)
	if err != nil {
		r.log.Error("configuration not reloaded; the agent runs on as it was", "err", err)
		return
	}
	for _, f := range fixedSettings {
		old, nv := reflect.ValueOf(f.get(&r.cur)).Elem(), reflect.ValueOf(f.get(&next)).Elem()
		if !reflect.DeepEqual(old.Interface(), nv.Interface()) {
			r.log.Warn("setting changed, but applies only after a restart", "setting", f.key, "why", f.why)
			nv.Set(old)
		}
	}

	var changed []string
	var rl engine.Reload
	isp := r.b.isp
	if !maps.Equal(r.cur.Pipeline.ISPMap, next.Pipeline.ISPMap) {
		isp = agent.NewISPMap(next.Pipeline.ISPMap)
	}
	// The pipeline's settings hold the server, the tags and the ISP map.
	if !reflect.DeepEqual(pipelineConfig(r.cur, nil), pipelineConfig(next, nil)) {
		pl := pipelineConfig(next, isp)
		rl.Pipeline = &pl
		changed = append(changed, "pipeline")
	}
	applied := map[string]bool{} // a source's new settings took
	if !reflect.DeepEqual(r.cur.API, next.API) {
		rl.Sources = append(rl.Sources, r.sourceChange("api", next, applied, func(c config.Config, _ *agent.ISPMap) (agent.Source, error) {
			return newPoller(c, r.log)
		}, isp))
	}
	if isp != r.b.isp || !reflect.DeepEqual(r.cur.Acct, next.Acct) {
		rl.Sources = append(rl.Sources, r.sourceChange("acct", next, applied, func(c config.Config, m *agent.ISPMap) (agent.Source, error) {
			// Built once the old tailer has stopped: its verdict window
			// carries on (a new one if the verdict settings changed).
			t, err := newTailer(c, m, r.b.verdicts, r.log)
			if err != nil {
				return nil, err
			}
			r.b.verdicts = t.VerdictWindow()
			return t, nil
		}, isp))
	}
	// The level first: the new sources log from their first poll.
	if r.cur.LogLevel != next.LogLevel {
		_ = r.level.UnmarshalText([]byte(next.LogLevel)) // validated
		changed = append(changed, "log_level")
	}
	if r.cur.MemoryLimit != next.MemoryLimit {
		applyMemoryLimit(next)
		changed = append(changed, "memory_limit")
	}
	// The watcher also runs the impact of each change over the accounting
	// files with the ISP map: a change to those rebuilds it too.
	if watchPMTA(r.cur) != watchPMTA(next) || !reflect.DeepEqual(r.cur.PMTA, next.PMTA) ||
		watchPMTA(next) && (r.cur.Derived.File != next.Derived.File || isp != r.b.isp || !reflect.DeepEqual(r.cur.Acct, next.Acct)) {
		on := watchPMTA(next)
		rl.Sources = append(rl.Sources, engine.SourceChange{Name: "pmta_config", Build: func() (agent.Source, error) {
			if !on {
				return nil, nil
			}
			return newConfigWatcher(next, r.log)
		}})
		changed = append(changed, "pmta.watch")
	}
	reloadErr := r.b.engine.Reload(ctx, rl)

	// What did not apply stays as it was, so that the next reload compares
	// with what runs.
	for _, c := range rl.Sources {
		switch {
		case applied[c.Name]:
			changed = append(changed, c.Name)
		case c.Name == "api":
			next.API = r.cur.API
		default:
			// The tailer runs on with the ISP map it had: so does the
			// pipeline's record of it, so that the next reload tries again.
			next.Acct, next.Pipeline.ISPMap, isp = r.cur.Acct, r.cur.Pipeline.ISPMap, r.b.isp
		}
	}
	r.b.isp = isp
	if r.b.latest != nil {
		r.b.latest.ExpireAfter("pmta_verdict", verdictTTL(next)) // acct.verdict.every may have changed
	}
	if r.b.relay != nil {
		// The relay's commands follow the API's new settings, and a token
		// taken out of the tokens file is refused from now on.
		if applied["api"] && next.API.Enabled {
			if c, err := pmtacmd.NewClient(next.API, r.log); err == nil {
				r.b.relay.SetRunner(c, next.API.Dialect)
				r.b.relay.SetCommandTimeout(next.API.Timeout)
			} else {
				r.log.Error("relay: the new API settings cannot send commands; the old ones are kept for them", "err", err)
			}
		}
		if err := r.b.relay.ReloadTokens(); err != nil {
			r.log.Error("relay: tokens not reloaded", "err", err)
		}
	}
	if !reflect.DeepEqual(r.cur.Derived, next.Derived) {
		logDerivation(next.Derived, r.log)
	}
	r.cur = next
	if reloadErr != nil {
		r.log.Error("configuration reloaded in part", "changed", strings.Join(changed, ","), "err", reloadErr)
		return
	}
	r.log.Info("configuration reloaded", "changed", strings.Join(changed, ","), "took", time.Since(started))
}

// sourceChange replaces the source name with one built from next, with the
// ISP map isp, or removes it when next turns it off. If the new one cannot
// be built, the source is built again from the settings it had, with the
// map it had. applied[name] says whether next's settings took: Build is
// only called once the old source has stopped.
func (r *reloader) sourceChange(name string, next config.Config, applied map[string]bool,
	mk func(config.Config, *agent.ISPMap) (agent.Source, error), isp *agent.ISPMap) engine.SourceChange {
	cur, curISP := r.cur, r.b.isp
	return engine.SourceChange{Name: name, Build: func() (agent.Source, error) {
		if !sourceEnabled(next, name) {
			applied[name] = true
			return nil, nil
		}
		s, err := mk(next, isp)
		if err == nil {
			applied[name] = true
			return s, nil
		}
		err = fmt.Errorf("new settings refused, the old ones kept: %w", err)
		if !sourceEnabled(cur, name) {
			return nil, err
		}
		old, oerr := mk(cur, curISP)
		return old, errors.Join(err, oerr)
	}}
}

func sourceEnabled(c config.Config, name string) bool {
	if name == "api" {
		return c.API.Enabled
	}
	return c.Acct.Enabled
}

func (r *reloader) notify(state string) {
	if err := r.sd.notify(state); err != nil {
		r.log.Warn("systemd notification failed", "err", err)
	}
}
