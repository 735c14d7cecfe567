package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

// cmdCommand sends one command to PowerMTA with the agent's API settings
// (URL, key, TLS; PowerMTA's own configuration included), the seed
// document's verbs translated for real PowerMTA with a note on stderr, and
// prints the reply. Exit 0 when PowerMTA ran it; 1 when it refused (its
// message on stderr) or could not be asked; 2 for a missing or malformed
// command line; 3 when the configuration has no API to send to, or its api
// section is invalid (other sections are not judged: see loadAPIConfig).
func cmdCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("command", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	asJSON := fs.Bool("json", false, "print the reply as one JSON object: sent, ok, status, message, data (text for the seed dialect)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: pmta-agent command [-config FILE] [-json] COMMAND…\n\n"+
			"Sends one command to PowerMTA, e.g. `pause queue outlook.com/*`, `schedule gmail.com/*`,\n"+
			"`show queues --paused=yes`. The words are joined by spaces and read as PowerMTA's\n"+
			"command line (double quotes group words).\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("no command given: pmta-agent command [-config FILE] [-json] COMMAND… (e.g. pause queue outlook.com/*)")}
	}
	cmd, err := pmtacmd.Parse(strings.Join(fs.Args(), " "))
	if err != nil {
		return usageError{err}
	}
	cfg, err := loadAPIConfig(*path)
	if err != nil {
		return err
	}
	client, err := pmtacmd.NewClient(cfg.API, newLogger(cfg, stderr))
	if err != nil {
		return configError{err}
	}
	sent, note := pmtacmd.Translate(cfg.API.Dialect, cmd)
	if note != "" {
		fmt.Fprintln(stderr, "note:", note)
	}
	reply, err := client.Run(ctx, sent)
	var refused *pmtacmd.RefusedError
	if err != nil && !errors.As(err, &refused) {
		return err // PowerMTA could not be asked: nothing to print but why
	}
	if *asJSON {
		b, merr := json.Marshal(reply)
		if merr != nil {
			return errors.Join(err, fmt.Errorf("encode reply: %w", merr))
		}
		if _, werr := fmt.Fprintf(stdout, "%s\n", b); werr != nil {
			return errors.Join(err, fmt.Errorf("write stdout: %w", werr))
		}
		return err
	}
	if err != nil {
		return err // the refusal, with PowerMTA's message, goes to stderr
	}
	if _, werr := io.WriteString(stdout, reply.Printable()); werr != nil {
		return fmt.Errorf("write stdout: %w", werr)
	}
	return nil
}

// loadAPIConfig loads the configuration as every command does — defaults,
// file, environment, PowerMTA's own configuration — but judges only what a
// command needs, the api and pmta sections: a broken sink or accounting
// setting must not keep an operator from pausing a queue. Every problem of
// those is in the error, one per line, as loadConfig reports them.
func loadAPIConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if errors.Is(err, config.ErrRead) {
		return cfg, configError{err}
	}
	var lines []string
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if key, _, _ := strings.Cut(line, ":"); key == "api" || key == "pmta" || strings.HasPrefix(key, "api.") || strings.HasPrefix(key, "pmta.") {
				lines = append(lines, line)
			}
		}
	}
	if !cfg.API.Enabled {
		return cfg, configError{pmtacmd.ErrAPIDisabled}
	}
	for _, e := range cfg.API.Validate() {
		lines = append(lines, "api."+e.Error())
	}
	if len(lines) > 0 {
		slices.Sort(lines)
		return cfg, configError{fmt.Errorf("invalid configuration:\n  %s", strings.Join(slices.Compact(lines), "\n  "))}
	}
	return cfg, nil
}
