package deploytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// This file makes the pmta_event points the annotation layers show: real
// requests to the relay of a real agent, which audits them into InfluxDB.

const (
	opsToken = "deploytest-ops-0123456789abcdef0123456789"
	amToken  = "deploytest-alertmanager-0123456789abcdef01"
	// amAlert is the alert of deploy/prometheus the relay's rule acts on.
	amAlert = "PmtaIspDeferralHigh"
)

// relayTokensFile writes the relay's tokens, mode 0600 as the agent
// demands: an operator and Alertmanager.
func relayTokensFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relay.tokens")
	if err := os.WriteFile(p, []byte("ops "+opsToken+"\nalertmanager "+amToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// relayConfig is the relay section of an agent: the README's rule for the
// per-ISP deferral alert, in dry run, with a cool-down that holds a repeat.
func relayConfig(tokens string) string {
	return fmt.Sprintf(`relay:
  enabled: true
  tokens_file: %s
  allow: [pause queue, resume queue, schedule, list, show]
  alertmanager:
    enabled: true
    dry_run: true
    cooldown: 1h
    max_actions_per_hour: 100
    rules:
      - alert: %s
        labels: {severity: critical}
        firing: "pause queue {domains:isp}/*"
        resolved: "resume queue {domains:isp}/*"
`, tokens, amAlert)
}

// relayReply is the relay's answer to /v1/command and /v1/alertmanager.
type relayReply struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Sent    string `json:"sent"`
	Actions []struct {
		Command string `json:"command"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"actions"`
}

func postRelay(t *testing.T, addr, path, token string, body any) (int, relayReply) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var r relayReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("POST %s: HTTP %d, undecodable answer: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, r
}

// Events as the dashboards' two layers should show them: an action is its
// command with who, what and how as tags; anything else its message.
func actionEvent(token, command, result, kind string) annoEvent {
	f := strings.Fields(command)
	return annoEvent{text: command, tags: []string{token, f[0] + " " + f[1], f[len(f)-1], result, kind}}
}

func refusalEvent(token, message, result, kind string) annoEvent {
	return annoEvent{text: message, tags: []string{token, result, kind}}
}

// actThroughRelay sends an operator's commands (two sent, three refused in
// three ways) and an Alertmanager notification twice (dry run, then held
// by the cool-down) to the relay of the agent of server at addr, waits for
// the audit's points in InfluxDB, and returns the annotation events they
// should make.
func actThroughRelay(t *testing.T, srv *influxtest.Server, procs []*agentProc, server, addr string) []annoEvent {
	t.Helper()
	var want []annoEvent
	for _, tc := range []struct {
		token, line string
		code        int
		status      string
	}{
		{opsToken, "pause queue gmail.com/*", 200, "sent"},
		{opsToken, "resume queue gmail.com/*", 200, "sent"},
		{opsToken + "x", "pause queue gmail.com/*", 401, "refused"},
		{opsToken, "delete --queue=gmail.com/*", 403, "refused"},
		{opsToken, "pause queue no-such-domain.example/*", 422, "refused_by_pmta"},
	} {
		code, r := postRelay(t, addr, "/v1/command", tc.token, map[string]string{"command": tc.line})
		if code != tc.code || r.Status != tc.status {
			t.Fatalf("relay %q: HTTP %d %s (%s), want %d %s", tc.line, code, r.Status, r.Message, tc.code, tc.status)
		}
		switch {
		case r.Status == "sent":
			want = append(want, actionEvent("ops", r.Sent, "sent", "command"))
		case code == http.StatusUnauthorized:
			// The audit's words, not the answer's; the caller has no name.
			want = append(want, refusalEvent("-", "no valid bearer token", "refused", "command"))
		default:
			want = append(want, refusalEvent("ops", r.Message, r.Status, "command"))
		}
	}
	alert := map[string]any{"version": "4", "status": "firing", "alerts": []map[string]any{{
		"status": "firing", "labels": map[string]string{"alertname": amAlert, "severity": "critical", "isp": hotISP}}}}
	for _, status := range []string{"dry_run", "held"} {
		code, r := postRelay(t, addr, "/v1/alertmanager", amToken, alert)
		if code != http.StatusOK || len(r.Actions) == 0 {
			t.Fatalf("alertmanager notification: HTTP %d, %d actions (%+v)", code, len(r.Actions), r)
		}
		for _, a := range r.Actions {
			if a.Status != status {
				t.Fatalf("alertmanager notification: action %q %s (%s), want %s", a.Command, a.Status, a.Message, status)
			}
			if status == "dry_run" {
				want = append(want, actionEvent("alertmanager", a.Command, status, "alertmanager"))
			} else {
				want = append(want, refusalEvent("alertmanager", a.Message, status, "alertmanager"))
			}
		}
	}
	q := fmt.Sprintf(`SELECT count("count") FROM "pmta_event" WHERE "server" = '%s'`, server)
	waitFor(t, fmt.Sprintf("%d pmta_event points of %s", len(want), server), 30*time.Second, procs, func() bool {
		return scalar(t, srv, testDB, q) >= float64(len(want))
	})
	return want
}
