// Package relay lets callers the agent authenticates act on PowerMTA
// through it: POST /v1/command forwards one allow-listed command, and POST
// /v1/alertmanager turns Alertmanager's webhook into the commands its rules
// name. Both are off by default, take bearer tokens from a file (each with
// a name, compared in constant time), are rate-limited per token, and audit
// every request — allowed, refused or failed — in the log and as a
// pmta_event point in the sinks.
package relay

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

// Config is the relay section.
type Config struct {
	// Enabled mounts /v1/command (and /v1/alertmanager when its section is
	// on) on the agent's listener.
	Enabled bool `koanf:"enabled"`
	// TokensFile holds "NAME TOKEN" lines, readable by its owner alone.
	TokensFile string `koanf:"tokens_file"`
	// Allow lists the commands that may be forwarded, by their name: "pause
	// queue", "resume queue", "schedule", "list", "show" (every show) or
	// "show status" (that one).
	Allow []string `koanf:"allow"`
	// RatePerMinute and Burst bound each token's requests.
	RatePerMinute int `koanf:"rate_per_minute"`
	Burst         int `koanf:"burst"`
	// AllowWildcards lets a command that changes state name queues by a
	// wildcard domain ("pause queue */*"): off, one request cannot pause
	// every domain at once.
	AllowWildcards bool `koanf:"allow_wildcards"`
	// AllowRemote lets the relay run on a listener that is not on
	// loopback. The listener speaks plain HTTP: put a TLS proxy in front.
	AllowRemote bool `koanf:"allow_remote"`
	// Alertmanager maps alerts to commands.
	Alertmanager AlertConfig `koanf:"alertmanager"`
}

// AlertConfig is the relay.alertmanager section.
type AlertConfig struct {
	Enabled bool `koanf:"enabled"`
	// DryRun (the default) audits what would be sent and sends nothing.
	DryRun bool `koanf:"dry_run"`
	// Cooldown is the least time between two actions of one rule on one
	// target (the same command line).
	Cooldown time.Duration `koanf:"cooldown"`
	// MaxActionsPerHour bounds the commands sent for alerts in any hour.
	MaxActionsPerHour int `koanf:"max_actions_per_hour"`
	// Rules say which alert sends which command.
	Rules []AlertRule `koanf:"rules"`
}

// AlertRule maps one alert to the command sent when it fires and the one
// sent when it resolves. In a command, {LABEL} is the alert's label LABEL,
// and {domains:LABEL} repeats the command for each recipient domain the
// agent has seen (in PowerMTA's queues) whose ISP is that label's value:
// "pause queue {domains:isp}/*". An alert without a label the command
// names sends nothing, and says so.
type AlertRule struct {
	Alert string `koanf:"alert"`
	// Labels the alert must also have, with these values (e.g. severity:
	// critical): the rule acts on the alert's critical state alone.
	Labels   map[string]string `koanf:"labels"`
	Firing   string            `koanf:"firing"`
	Resolved string            `koanf:"resolved"`
}

// matches reports whether the rule is for an alert with labels.
func (r AlertRule) matches(labels map[string]string) bool {
	if labels["alertname"] != r.Alert {
		return false
	}
	for k, v := range r.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// DefaultConfig is off, with the read-only and queue verbs allowed once on.
func DefaultConfig() Config {
	return Config{
		Allow:         []string{"pause queue", "resume queue", "schedule", "list", "show"},
		RatePerMinute: 30, Burst: 10,
		Alertmanager: AlertConfig{DryRun: true, Cooldown: 15 * time.Minute, MaxActionsPerHour: 20},
	}
}

// allowable are the names an allow-list may hold: what the agent can check
// (pmtacmd.Validate knows their words). Deleting mail, disabling sources or
// reloading PowerMTA is not for a relay.
var allowable = []string{"pause queue", "resume queue", "pause job", "resume job", "schedule", "set queue", "list", "show"}

// Validate reports every problem, each starting with its key relative to
// the relay section.
func (c Config) Validate() []error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.TokensFile == "" {
		errs = append(errs, errors.New("tokens_file: required: the relay forwards nothing unauthenticated"))
	} else if _, err := loadTokens(c.TokensFile); err != nil {
		errs = append(errs, fmt.Errorf("tokens_file: %w", err)) // never a token: loadTokens does not say them
	}
	if len(c.Allow) == 0 {
		errs = append(errs, errors.New("allow: empty: name the commands callers may send"))
	}
	for _, a := range c.Allow {
		if !allowed(allowable, strings.ToLower(strings.Join(strings.Fields(a), " "))) {
			errs = append(errs, fmt.Errorf("allow: %q is not one of %s", a, strings.Join(allowable, ", ")))
		}
	}
	if c.RatePerMinute < 1 || c.Burst < 1 {
		errs = append(errs, errors.New("rate_per_minute and burst: must be at least 1"))
	}
	am := c.Alertmanager
	if !am.Enabled {
		return errs
	}
	if am.Cooldown < 0 || am.MaxActionsPerHour < 1 {
		errs = append(errs, errors.New("alertmanager: cooldown must be 0 or more, max_actions_per_hour at least 1"))
	}
	if len(am.Rules) == 0 {
		errs = append(errs, errors.New("alertmanager.rules: empty: name the alerts and their commands"))
	}
	for i, r := range am.Rules {
		if r.Alert == "" {
			errs = append(errs, fmt.Errorf("alertmanager.rules[%d].alert: required", i))
		}
		for _, t := range []struct{ key, tmpl string }{{"firing", r.Firing}, {"resolved", r.Resolved}} {
			if t.tmpl == "" {
				continue
			}
			if err := checkTemplate(t.tmpl, c.Allow); err != nil {
				errs = append(errs, fmt.Errorf("alertmanager.rules[%d].%s: %w", i, t.key, err))
			}
		}
		if r.Firing == "" && r.Resolved == "" {
			errs = append(errs, fmt.Errorf("alertmanager.rules[%d]: neither firing nor resolved names a command", i))
		}
	}
	return errs
}

// checkTemplate parses a rule's command with every {LABEL} and
// {domains:LABEL} filled with a sample domain, and checks it against the
// allow-list.
func checkTemplate(tmpl string, allow []string) error {
	line, err := expand(tmpl, func(string) (string, bool) { return "example.com", true }, nil)
	if err != nil {
		return err
	}
	if len(line) == 0 {
		return nil
	}
	cmd, err := pmtacmd.Parse(line[0])
	if err != nil {
		return err
	}
	if !allowed(allow, cmd.Name()) {
		return fmt.Errorf("%q is not in relay.allow", cmd.Name())
	}
	return nil
}

// allowed reports whether name (a Command.Name) is on the list: by itself,
// or "show" for every show.
func allowed(list []string, name string) bool {
	for _, a := range list {
		a = strings.ToLower(strings.Join(strings.Fields(a), " "))
		if a == name || a == "show" && strings.HasPrefix(name, "show ") || a == "show" && name == "show" {
			return true
		}
	}
	return false
}
