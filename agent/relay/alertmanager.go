package relay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

// notification is Alertmanager's webhook body (version 4), the parts the
// relay reads.
type notification struct {
	Version string  `json:"version"`
	Status  string  `json:"status"`
	Alerts  []alert `json:"alerts"`
}

type alert struct {
	Status string            `json:"status"` // firing or resolved
	Labels map[string]string `json:"labels"`
}

// alertState is what bounds the actions: the last time each (rule, command)
// was sent, and the times of the actions in the last hour.
type alertState struct {
	mu      sync.Mutex
	last    map[string]time.Time
	actions []time.Time
}

// admit decides whether a firing action may go now, and if so records it;
// capped says the hourly cap held it. Resolutions are not admitted: they
// always go, and count for nothing.
func (s *alertState) admit(key string, now time.Time, cooldown time.Duration, perHour int) (ok bool, why string, capped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.last[key]; ok && now.Sub(at) < cooldown {
		return false, fmt.Sprintf("cool-down: the same action %s ago (alertmanager.cooldown %s)", now.Sub(at).Round(time.Second), cooldown), false
	}
	s.actions = slices.DeleteFunc(s.actions, func(t time.Time) bool { return now.Sub(t) >= time.Hour })
	if len(s.actions) >= perHour {
		return false, fmt.Sprintf("cap: %d actions in the last hour (alertmanager.max_actions_per_hour)", len(s.actions)), true
	}
	s.last[key] = now
	s.actions = append(s.actions, now)
	return true, "", false
}

// maxAlerts bounds the alerts one notification may carry.
const maxAlerts = 1000

func (rl *Relay) serveAlertmanager(w http.ResponseWriter, r *http.Request) {
	name, ok := rl.caller(w, r, "alertmanager")
	if !ok {
		return
	}
	var n notification
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&n); err != nil || len(n.Alerts) > maxAlerts {
		msg := fmt.Sprintf("body: not an Alertmanager notification: %v", err)
		if err == nil {
			msg = fmt.Sprintf("body: %d alerts; at most %d", len(n.Alerts), maxAlerts)
		}
		rl.audit(event{kind: "alertmanager", token: name, result: "refused", message: msg})
		writeJSON(w, http.StatusBadRequest, map[string]any{"status": "refused", "message": msg})
		return
	}
	am := rl.cfg.Alertmanager
	var results []map[string]any
	seen := map[string]bool{}
	held := 0 // firing actions over the hourly cap, audited as one event
	for _, a := range n.Alerts {
		alertname := a.Labels["alertname"]
		if key := alertKey(a); seen[key] {
			continue // the same alert twice in one notification acts once
		} else {
			seen[key] = true
		}
		i := slices.IndexFunc(am.Rules, func(r AlertRule) bool { return r.matches(a.Labels) })
		if i < 0 {
			continue // not an alert the relay acts on: said in the summary below
		}
		rule := am.Rules[i]
		var tmpl string
		switch a.Status {
		case "firing":
			tmpl = rule.Firing
		case "resolved":
			tmpl = rule.Resolved
		default:
			msg := fmt.Sprintf("alert status %q is neither firing nor resolved", a.Status)
			rl.audit(event{kind: "alertmanager", token: name, alert: alertname, result: "refused", message: msg})
			results = append(results, map[string]any{"alert": alertname, "status": "refused", "message": msg})
			continue
		}
		if tmpl == "" {
			continue
		}
		lines, err := expand(tmpl, func(l string) (string, bool) { v, ok := a.Labels[l]; return v, ok }, rl.domains.of)
		if err != nil {
			rl.audit(event{kind: "alertmanager", token: name, alert: alertname, result: "refused", message: err.Error()})
			results = append(results, map[string]any{"alert": alertname, "status": "refused", "message": err.Error()})
			continue
		}
		for _, line := range lines {
			var gate func() (bool, string)
			if a.Status == "firing" {
				// A resolution always goes: it restores what a firing did,
				// and Alertmanager says it once.
				if held > 0 {
					held++
					continue
				}
				gate = func() (bool, string) {
					ok, why, capped := rl.alerts.admit(rule.Alert+"\x00"+line, rl.now(), am.Cooldown, am.MaxActionsPerHour)
					if capped {
						held++
					}
					return ok, why
				}
			}
			res := rl.forwardEvent(r.Context(), event{kind: "alertmanager", token: name, command: line, alert: alertname}, am.DryRun, gate)
			results = append(results, map[string]any{"alert": alertname, "command": line, "status": res.status, "message": res.message})
		}
	}
	if held > 1 {
		msg := fmt.Sprintf("%d more firing actions held: alertmanager.max_actions_per_hour (%d) reached", held-1, am.MaxActionsPerHour)
		rl.audit(event{kind: "alertmanager", token: name, result: "held", message: msg})
		results = append(results, map[string]any{"status": "held", "message": msg})
	}
	if len(results) == 0 {
		// Still audited: a notification the rules do not act on.
		rl.audit(event{kind: "alertmanager", token: name, result: "ignored", message: fmt.Sprintf("%d alerts, none a rule acts on", len(n.Alerts))})
	}
	// 200 whatever the actions came to (each is audited): Alertmanager
	// would send a refused notification again and again.
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "actions": results})
}

// alertKey identifies an alert in a notification: its status and labels.
func alertKey(a alert) string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(a.Status)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + a.Labels[k])
	}
	return b.String()
}

// expand fills a rule's command: {LABEL} with the label's value, and
// {domains:LABEL} with each domain seen for that ISP, one line each. A
// label's value must be a plain word — letters, digits, . _ - — so that an
// alert can name a queue but never widen one (no wildcard, no space, no
// option).
func expand(tmpl string, label func(string) (string, bool), domainsOf func(string) []string) ([]string, error) {
	lines := []string{""}
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: a { without its }", tmpl)
		}
		ph := rest[open+1 : open+end]
		if ph == "default" { // PowerMTA's own {default} VirtualMTA
			for i := range lines {
				lines[i] += rest[:open+end+1]
			}
			rest = rest[open+end+1:]
			continue
		}
		name, many := strings.CutPrefix(ph, "domains:")
		v, ok := label(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("the alert has no label %q, which %q needs: nothing sent", name, tmpl)
		}
		if !plainWord(v) {
			return nil, fmt.Errorf("label %s=%q is not a plain word (letters, digits, . _ -): nothing sent", name, v)
		}
		values := []string{v}
		if many && domainsOf != nil {
			values = slices.DeleteFunc(domainsOf(v), func(d string) bool { return !plainWord(d) || pmtacmd.ValidDomain(d) != nil })
			if len(values) == 0 {
				return nil, fmt.Errorf("no recipient domain of %s %q seen in PowerMTA's queues: nothing sent", name, v)
			}
		}
		var next []string
		for _, l := range lines {
			for _, val := range values {
				next = append(next, l+rest[:open]+val)
			}
		}
		lines, rest = next, rest[open+end+1:]
	}
	for i := range lines {
		lines[i] += rest
	}
	return lines, nil
}

func plainWord(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '.' {
		return false // never an option, never a relative name
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return len(s) <= 253
}
