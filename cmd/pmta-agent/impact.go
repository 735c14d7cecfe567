package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/impact"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// cmdImpact compares delivery before and after a configuration change: the
// latest one in the change journal, or -at TIME; with -send it also writes
// the result, as pmta_impact points, through the configured sinks.
func cmdImpact(ctx context.Context, args []string, out, stderr io.Writer) error {
	fs := newFlagSet("impact", stderr)
	path := fs.String("config", "", "configuration file (YAML): state_dir (the change journal), acct.globs, pipeline.isp_map, pmta.impact_window; with -send the sinks")
	atFlag := fs.String("at", "", `the change's time: RFC 3339, PowerMTA's "2024-01-15 10:08:20-0500", or "2006-01-02 15:04" (local time); default: the latest change the agent recorded`)
	window := fs.Duration("window", 0, "how long before and after the change to compare (default: pmta.impact_window of the configuration, 2h)")
	minAttempts := fs.Int64("min-attempts", impact.DefaultMinAttempts, "fewer attempts on either side give the verdict \"too few\"")
	format := fs.String("format", "table", "table, json, or lines (the pmta_impact points as line protocol)")
	send := fs.Bool("send", false, "also write the pmta_impact points through the configured sinks, and say on stderr what each did with them")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: pmta-agent impact [-config FILE] [-at TIME] [-window 2h] [-focus KIND=VALUE] [-min-attempts 200] [-format table|json|lines] [-send] [FILE…]\n\n"+
			"Compares delivery before and after a PowerMTA configuration change — the latest the agent\n"+
			"recorded (<state_dir>/pmta_config/changes.jsonl: run it as the agent's user), or -at — per ISP\n"+
			"and for what the change touched, from the accounting files (FILE…, default acct.globs).\n"+
			"-send writes the result as pmta_impact points (at the change's time) through the sinks.\n\n")
		fs.PrintDefaults()
	}
	var focus impact.Focus
	fs.Func("focus", "what the change touched, KIND=VALUE: domain=gmail.com, vmta=vmta-gm-011, pool=pool-gmail (repeatable)", func(s string) error {
		t, err := impact.ParseTarget(s)
		focus = append(focus, t)
		return err
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" && *format != "lines" {
		return usageError{fmt.Errorf("-format %q: want table, json or lines", *format)}
	}
	if *window != 0 && (*window < time.Second || *window%time.Second != 0) {
		return usageError{fmt.Errorf("-window %s: want whole seconds, at least 1s", *window)}
	}
	if *minAttempts < 1 {
		return usageError{fmt.Errorf("-min-attempts %d: want 1 or more", *minAttempts)}
	}
	var at time.Time
	if *atFlag != "" {
		var err error
		if at, err = parseAt(*atFlag); err != nil {
			return usageError{err}
		}
	}

	var cfg config.Config
	var err error
	if *path == "" && !*send {
		cfg, err = config.Load("", os.Environ())
	} else {
		cfg, err = loadConfig(*path) // -send needs a configuration that runs: its sinks
	}
	if err != nil {
		return err
	}
	if *window == 0 {
		*window = cfg.PMTA.ImpactWindow
	}
	change := ""
	if *atFlag == "" { // -at 0001-01-01T00:00:00Z is a time too, if an odd one
		all, err := journalChanges(cfg.StateDir)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return configError{fmt.Errorf("no configuration change is known: %s has none (the agent records the changes "+
				"it sees while it runs with pmta.watch on); give -at TIME", confwatch.JournalPath(cfg.StateDir))}
		}
		// The changes of the latest one's second, as the agent measures
		// them: one comparison, the same points.
		latest := impact.SameSecond(all)
		at, change = latest[len(latest)-1].Time, impact.Describe(latest)
		if len(focus) == 0 {
			focus = impact.FocusOfChanges(latest, domainMacros(cfg))
		}
	}

	files := fs.Args()
	if len(files) == 0 {
		if files, err = acct.GlobFiles(cfg.Acct.Globs); err != nil {
			return fmt.Errorf("acct.globs: %w", err)
		}
		if len(files) == 0 {
			return fmt.Errorf("no accounting files match %s (acct.globs); name them", strings.Join(cfg.Acct.Globs, " "))
		}
		// A file last written before the window began holds none of
		// its records (the rotated ones of days before).
		all := len(files)
		files = impact.ModifiedSince(files, at.Add(-*window))
		if len(files) == 0 {
			return fmt.Errorf("none of the %d accounting files of acct.globs was written to since %s, the before window's start: "+
				"they hold no record of the windows (the files of that time are gone, or the change is older than the files kept)",
				all, at.Add(-*window).UTC().Format(time.RFC3339))
		}
	}
	rep, err := impact.Analyze(ctx, files, at, *window, focus, agent.NewISPMap(cfg.Pipeline.ISPMap),
		impact.Options{MinAttempts: *minAttempts, SourceIPs: cfg.Acct.SourceIPs, Pools: cfg.Acct.Pools})
	if err != nil {
		return err
	}
	pts := impactPoints(cfg, rep)
	var printErr error
	switch *format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		printErr = enc.Encode(struct {
			Change string `json:"change,omitempty"`
			impact.Report
		}{change, rep})
	case "lines":
		if _, err := out.Write(agent.LineProtocol(pts)); err != nil {
			printErr = fmt.Errorf("write stdout: %w", err)
		}
	default:
		printErr = printImpact(out, change, rep)
	}
	if !*send || printErr != nil {
		return printErr
	}
	return sendImpact(ctx, cfg, pts, stderr, newLogger(cfg, stderr))
}

// parseAt reads -at: RFC 3339, PowerMTA's own timeLogged
// ("2024-01-15 10:08:20-0500"), or "2006-01-02 15:04[:05]" in local time.
func parseAt(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`-at %q: want RFC 3339 (2024-01-15T10:00:00Z), PowerMTA's "2024-01-15 10:08:20-0500" or "2006-01-02 15:04" (local)`, s)
}

// domainMacros reads PowerMTA's domain-macro lines, for a change to
// <domain $macro>; nil when PowerMTA's configuration is not at hand.
func domainMacros(cfg config.Config) map[string]string {
	if cfg.Derived == nil || cfg.Derived.File == "" {
		return nil
	}
	root, err := pmtaconf.Load(cfg.Derived.File)
	if err != nil {
		return nil
	}
	return pmtaconf.Derive(root, pmtaconf.Options{}).DomainMacros
}

// printImpact writes the report as a table: the ISPs, then the focus.
func printImpact(w io.Writer, change string, r impact.Report) error {
	if change != "" {
		fmt.Fprintf(w, "change:  %s\n", change)
	}
	fmt.Fprintf(w, "at:      %s, %s before and after (%s → %s)\n", r.At.Format(time.RFC3339), r.Window,
		r.BeforeFrom.Format(time.RFC3339), r.AfterTo.Format(time.RFC3339))
	fmt.Fprintf(w, "test:    %s; at least %d attempts each side\n\n", r.Test, r.MinAttempts)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tATTEMPTS\tDEFERRED %\tBOUNCED %\tZ\tVERDICT\tBOUNCES\tFLAG")
	pct := func(t impact.Test) string { return fmt.Sprintf("%.2f → %.2f", t.BeforePct, t.AfterPct) }
	for i, row := range r.Rows {
		if row.Focus && (i == 0 || !r.Rows[i-1].Focus) {
			fmt.Fprintln(tw, "touched by the change:\t\t\t\t\t\t\t")
		}
		name := row.Kind + " " + row.Name
		fmt.Fprintf(tw, "%s\t%d → %d\t%s\t%s\t%.1f\t%s\t%s\t%s\n", name, row.Before.Attempts, row.After.Attempts,
			pct(row.Deferrals), pct(row.Bounces), row.Deferrals.Z, row.Outcome, row.Bounces.Outcome, row.Flag)
	}
	if len(r.Rows) == 0 {
		fmt.Fprintln(tw, "(no records in either window)\t\t\t\t\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Explanation != "" {
		fmt.Fprintf(w, "\n%s: %s\n", impact.EffectAbsent, r.Explanation)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	_, err := fmt.Fprintf(w, "%d records read from %d files\n", r.Records, r.Files)
	return err
}
