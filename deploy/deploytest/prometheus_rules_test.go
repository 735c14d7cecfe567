package deploytest

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/prometheus/common/model"

	"github.com/pmta-agent/pmta-agent/agent/config"
)

// The Prometheus side of deploy/: the rules of prometheus/pmta-agent.rules.yml
// with their promtool unit tests, scrape.yml that loads them and the
// Alertmanager example that routes their alerts. promtool and amtool check
// each file; the tests here check what those tools cannot see: that every
// Grafana alert rule has a Prometheus counterpart with the same threshold,
// that every alert is unit-tested firing and silent, and that every metric,
// label and label value the rules read is one a running agent serves.

const (
	promRulesPath  = "prometheus/pmta-agent.rules.yml"
	promTestsPath  = "prometheus/pmta-agent.rules_test.yml"
	promScrapePath = "prometheus/scrape.yml"
	amConfigPath   = "alertmanager/alertmanager.yml"
	relayReceiver  = "pmta-agent-relay"
	humanReceiver  = "operators"
)

// counterpart is a Prometheus alert standing for a Grafana rule.
type counterpart struct {
	alert, severity string
	// scale turns Grafana's threshold into the Prometheus one (Grafana's
	// deferral rate is in percent, the Prometheus ratio from 0 to 1); 0: the
	// Prometheus rule has a condition of another kind, no threshold.
	scale float64
	// sameFor: the same `for`. The agent-down rules wait differently: Grafana
	// averages five minutes of reports, `up` is known at every scrape.
	sameFor bool
	// verdict: a rule on the agent's pmta_verdict, "scope=value": both read
	// the rows of that scope and fire on that verdict.
	verdict string
}

// grafanaCounterparts maps every Grafana alert rule's uid to its Prometheus
// alerts. The critical deferral alert is the one Alertmanager sends to the
// agent's relay.
var grafanaCounterparts = map[string][]counterpart{
	"pmta-queue-depth-warning":    {{alert: "PmtaQueueDepthHigh", severity: "warning", scale: 1, sameFor: true}},
	"pmta-queue-depth-critical":   {{alert: "PmtaQueueDepthHigh", severity: "critical", scale: 1, sameFor: true}},
	"pmta-deferral-rate-warning":  {{alert: "PmtaIspDeferralHigh", severity: "warning", scale: 0.01, sameFor: true}},
	"pmta-deferral-rate-critical": {{alert: "PmtaIspDeferralHigh", severity: "critical", scale: 0.01, sameFor: true}},
	"pmta-agent-not-reporting": {
		{alert: "PmtaAgentDown", severity: "critical"},
		{alert: "PmtaAgentGone", severity: "critical"},
		{alert: "PmtaAgentAbsent", severity: "critical"},
	},
	"pmta-agent-points-dropped": {{alert: "PmtaAgentPointsDropped", severity: "warning", scale: 1, sameFor: true}},
	// The agent's verdict: an equality on its value, no threshold.
	"pmta-ip-specific-deferrals": {{alert: "PmtaIpSpecificDeferrals", severity: "warning", sameFor: true, verdict: "ip=1"}},
	"pmta-pool-wide-deferrals":   {{alert: "PmtaPoolWideDeferrals", severity: "warning", sameFor: true, verdict: "pool=2"}},
}

// relayAlert is what alertmanager.yml sends to the relay, besides the people.
var relayAlert = grafanaCounterparts["pmta-deferral-rate-critical"][0]

type promRuleFile struct {
	Groups []struct {
		Name     string     `json:"name"`
		Interval string     `json:"interval"`
		Rules    []promRule `json:"rules"`
	} `json:"groups"`
}

type promRule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func (r promRule) name() string {
	if r.Alert != "" {
		return r.Alert + "/" + r.Labels["severity"]
	}
	return r.Record
}

// isPrometheusRules reports whether a YAML document with groups is a
// Prometheus rule file: its rules are `alert` or `record` (Grafana's have a
// uid and a title).
func isPrometheusRules(m map[string]any) bool {
	groups, _ := m["groups"].([]any)
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		rules, _ := gm["rules"].([]any)
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			if rm["alert"] != nil || rm["record"] != nil {
				return true
			}
		}
	}
	return false
}

// promRules returns the rules of pmta-agent.rules.yml.
func promRules(t *testing.T, a *assets) []promRule {
	t.Helper()
	var f promRuleFile
	if err := viaJSON(a.yamlFile(t, promRulesPath), &f); err != nil {
		t.Fatalf("%s: %v", promRulesPath, err)
	}
	var out []promRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", promRulesPath)
	}
	return out
}

// lookTool finds a command-line tool; without it the test is skipped, or
// fails in CI, which installs it.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: CI installs Debian's %s package for it (.ci/run)", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// runTool runs a tool in deploy/ and fails the test when it exits non-zero.
func runTool(t *testing.T, a *assets, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = a.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("%s %s: %v\n%s%s", filepath.Base(tool), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestPrometheusRulesPromtool checks the rules and scrape.yml, which loads
// them, with promtool and runs the rules' unit tests; and scrape.yml without
// its rules and alerting as a Prometheus agent, the other way it is used.
func TestPrometheusRulesPromtool(t *testing.T) {
	a := loadAssets(t)
	promtool := lookTool(t, "promtool", "prometheus")
	runTool(t, a, promtool, "check", "rules", "--lint=all", "--lint-fatal", promRulesPath)
	runTool(t, a, promtool, "test", "rules", promTestsPath)
	runTool(t, a, promtool, "check", "config", promScrapePath)

	m := a.yamlFile(t, promScrapePath)
	var files []string
	if err := viaJSON(m["rule_files"], &files); err != nil || !slices.Contains(files, filepath.Base(promRulesPath)) {
		t.Errorf("%s: rule_files %v does not load %s", promScrapePath, m["rule_files"], filepath.Base(promRulesPath))
	}
	agentMode := map[string]any{}
	for k, v := range m {
		if k != "rule_files" && k != "alerting" {
			agentMode[k] = v
		}
	}
	b, err := kyaml.Parser().Marshal(agentMode)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "scrape-agent.yml")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, a, promtool, "check", "config", "--agent", tmp)
}

// TestPrometheusRulesMatchGrafana holds the two rule sets to one design:
// every Grafana rule has its Prometheus alerts, with Grafana's labels, its
// threshold (strictly above, as Grafana's gt), its minimum volume and its
// `for`; every Prometheus alert stands for a Grafana rule.
func TestPrometheusRulesMatchGrafana(t *testing.T) {
	a := loadAssets(t)
	alerts := map[string]promRule{}
	for _, r := range promRules(t, a) {
		if r.Alert == "" {
			continue
		}
		if _, dup := alerts[r.name()]; dup {
			t.Errorf("%s: alert %s defined twice", promRulesPath, r.name())
		}
		alerts[r.name()] = r
	}
	strictly := regexp.MustCompile(`>\s*([0-9][0-9.]*)`)
	atLeast := regexp.MustCompile(`>=\s*([0-9][0-9.]*)`)
	covered := map[string]bool{}
	grafana := map[string]bool{}
	for _, f := range a.alerts {
		for _, g := range f.rules() {
			grafana[g.UID] = true
			cps, ok := grafanaCounterparts[g.UID]
			if !ok {
				t.Errorf("Grafana rule %s (%q) has no Prometheus counterpart in grafanaCounterparts", g.UID, g.Title)
				continue
			}
			var (
				ev        evaluator
				minVolume string
			)
			for _, q := range g.Data {
				switch {
				case q.RefID == g.Condition && len(q.Model.Conditions) > 0:
					ev = q.Model.Conditions[0].Evaluator
				case q.Model.Type == "math":
					if m := atLeast.FindStringSubmatch(q.Model.Expression); m != nil {
						minVolume = m[1]
					}
				}
			}
			for _, cp := range cps {
				key := cp.alert + "/" + cp.severity
				covered[key] = true
				r, ok := alerts[key]
				if !ok {
					t.Errorf("%s: no Prometheus alert %s with severity %s in %s", g.UID, cp.alert, cp.severity, promRulesPath)
					continue
				}
				for k, v := range g.Labels {
					if r.Labels[k] != v {
						t.Errorf("%s: label %s=%q, Grafana's %s has %q", key, k, r.Labels[k], g.UID, v)
					}
				}
				if cp.sameFor && !sameDuration(r.For, g.For) {
					t.Errorf("%s: for %q, Grafana's %s waits %q", key, r.For, g.UID, g.For)
				}
				if cp.verdict != "" {
					checkVerdictRule(t, key, r, g, cp.verdict)
				}
				if cp.scale == 0 {
					continue
				}
				if ev.Type != "gt" || len(ev.Params) != 1 {
					t.Errorf("%s: condition %s %v; this test compares gt with one parameter", g.UID, ev.Type, ev.Params)
					continue
				}
				m := strictly.FindStringSubmatch(r.Expr)
				if m == nil {
					t.Errorf("%s: no `> threshold` in %q", key, r.Expr)
					continue
				}
				want := ev.Params[0] * cp.scale
				if pt, _ := strconv.ParseFloat(m[1], 64); math.Abs(pt-want) > 1e-9*math.Max(1, want) {
					t.Errorf("%s: threshold %s, Grafana's %s has %g (× %g = %g)", key, m[1], g.UID, ev.Params[0], cp.scale, want)
				}
				if minVolume != "" && !strings.Contains(r.Expr, ">= "+minVolume) {
					t.Errorf("%s: Grafana's %s fires from %s attempts only; the expression %q has no `>= %s`", key, g.UID, minVolume, r.Expr, minVolume)
				}
			}
		}
	}
	for uid := range grafanaCounterparts {
		if !grafana[uid] {
			t.Errorf("grafanaCounterparts names Grafana rule %s, which deploy/ does not have", uid)
		}
	}
	for key := range alerts {
		if !covered[key] {
			t.Errorf("Prometheus alert %s stands for no Grafana rule: add it to grafanaCounterparts (and a Grafana rule)", key)
		}
	}
}

// checkVerdictRule holds a Prometheus alert on the agent's verdict gauges
// and its Grafana rule to one scope and one verdict: Grafana's queries read
// pmta_verdict's rows of the scope only and its math compares the verdict
// with the value; the Prometheus expression selects
// pmta_verdict_verdict{scope="…"} == value.
func checkVerdictRule(t *testing.T, key string, r promRule, g alertRule, verdict string) {
	t.Helper()
	scope, value, _ := strings.Cut(verdict, "=")
	want := regexp.MustCompile(`\bpmta_verdict_verdict\{[^}]*\bscope="` + regexp.QuoteMeta(scope) + `"[^}]*\}\s*==\s*` + regexp.QuoteMeta(value) + `(\s|$)`)
	if !want.MatchString(r.Expr) {
		t.Errorf("%s: expression %q lacks pmta_verdict_verdict{scope=%q} == %s", key, r.Expr, scope, value)
	}
	equals := regexp.MustCompile(`^\$\{?[A-Z]+\}?\s*==\s*` + regexp.QuoteMeta(value) + `$`)
	var queries, compared int
	for _, q := range g.Data {
		switch {
		case q.DatasourceUID == "__expr__":
			if q.Model.Type == "math" && equals.MatchString(strings.TrimSpace(q.Model.Expression)) {
				compared++
			}
		case !strings.Contains(q.Model.Query, `FROM "pmta_verdict"`) || !strings.Contains(q.Model.Query, fmt.Sprintf(`"scope" = '%s'`, scope)):
			t.Errorf("%s: query %s does not read pmta_verdict's %s rows only: %s", g.UID, q.RefID, scope, q.Model.Query)
		default:
			queries++
		}
	}
	if queries == 0 || compared != 1 {
		t.Errorf("%s: want queries of pmta_verdict (%d) and one math expression $X == %s (%d)", g.UID, queries, value, compared)
	}
}

// sameDuration compares two durations as Prometheus and Grafana write them
// ("" is 0).
func sameDuration(a, b string) bool {
	parse := func(s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := model.ParseDuration(s)
		if err != nil {
			return -1
		}
		return time.Duration(d)
	}
	return parse(a) == parse(b) && parse(a) >= 0
}

// promUnitTests is the part of a promtool unit-test file this test reads.
type promUnitTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestPrometheusRulesUnitTested checks that the unit tests cover every
// alert: silent in some case, firing at each of its severities, the one
// sent to the relay with the labels Alertmanager groups it by; and that
// every alert says what happened, what it means and what to do.
func TestPrometheusRulesUnitTested(t *testing.T) {
	a := loadAssets(t)
	var ut promUnitTests
	if err := viaJSON(a.yamlFile(t, promTestsPath), &ut); err != nil {
		t.Fatalf("%s: %v", promTestsPath, err)
	}
	if !slices.Contains(ut.RuleFiles, filepath.Base(promRulesPath)) {
		t.Errorf("%s: rule_files %v does not load %s", promTestsPath, ut.RuleFiles, filepath.Base(promRulesPath))
	}
	silent, fires := map[string]bool{}, map[string]bool{}
	var relayLabels []map[string]string
	for _, tc := range ut.Tests {
		for _, art := range tc.AlertRuleTest {
			if len(art.ExpAlerts) == 0 {
				silent[art.Alertname] = true
			}
			for _, e := range art.ExpAlerts {
				fires[art.Alertname+"/"+e.ExpLabels["severity"]] = true
				if art.Alertname == relayAlert.alert && e.ExpLabels["severity"] == relayAlert.severity {
					relayLabels = append(relayLabels, e.ExpLabels)
				}
			}
		}
	}
	for _, r := range promRules(t, a) {
		if r.Alert == "" {
			continue
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no unit test in %s where it stays silent", r.Alert, promTestsPath)
		}
		if !fires[r.name()] {
			t.Errorf("%s: no unit test in %s where it fires", r.name(), promTestsPath)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.name(), s)
		}
		for _, k := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[k]) == "" {
				t.Errorf("%s: no %s annotation", r.name(), k)
			}
		}
	}
	groupBy := relayRoute(t, a).GroupBy
	if len(relayLabels) == 0 {
		t.Errorf("no unit test fires %s/%s, the alert sent to the relay", relayAlert.alert, relayAlert.severity)
	}
	for _, l := range relayLabels {
		for _, k := range groupBy {
			if k != "alertname" && l[k] == "" {
				t.Errorf("%s/%s fires without %s, which Alertmanager groups it by for the relay: %v", relayAlert.alert, relayAlert.severity, k, l)
			}
		}
	}
}

// amRoute is a node of Alertmanager's routing tree.
type amRoute struct {
	Receiver string    `json:"receiver"`
	Matchers []string  `json:"matchers"`
	GroupBy  []string  `json:"group_by"`
	Continue bool      `json:"continue"`
	Routes   []amRoute `json:"routes"`
}

type amConfig struct {
	Route     amRoute `json:"route"`
	Receivers []struct {
		Name           string `json:"name"`
		WebhookConfigs []struct {
			URL          string `json:"url"`
			SendResolved *bool  `json:"send_resolved"`
			HTTPConfig   struct {
				Authorization struct {
					Type            string `json:"type"`
					Credentials     string `json:"credentials"`
					CredentialsFile string `json:"credentials_file"`
				} `json:"authorization"`
			} `json:"http_config"`
		} `json:"webhook_configs"`
	} `json:"receivers"`
}

// relayRoute returns the route to the relay's receiver, with the group_by
// it inherits.
func relayRoute(t *testing.T, a *assets) amRoute {
	t.Helper()
	var cfg amConfig
	if err := viaJSON(a.yamlFile(t, amConfigPath), &cfg); err != nil {
		t.Fatalf("%s: %v", amConfigPath, err)
	}
	var find func(r amRoute, groupBy []string) (amRoute, bool)
	find = func(r amRoute, groupBy []string) (amRoute, bool) {
		if r.GroupBy == nil {
			r.GroupBy = groupBy
		}
		if r.Receiver == relayReceiver && r.Matchers != nil {
			return r, true
		}
		for _, c := range r.Routes {
			if found, ok := find(c, r.GroupBy); ok {
				return found, true
			}
		}
		return amRoute{}, false
	}
	r, ok := find(cfg.Route, nil)
	if !ok {
		t.Fatalf("%s: no route with matchers to receiver %s", amConfigPath, relayReceiver)
	}
	return r
}

// TestAlertmanagerConfig checks the example against the agent and the rules
// (the relay's URL on the agent's default listener, a bearer token from a
// file, resolved alerts sent too, grouping by the queue's labels) and, with
// amtool, the file itself and where each alert of the rules goes: the
// critical deferral alert to the relay and the people, the rest to the
// people.
func TestAlertmanagerConfig(t *testing.T) {
	a := loadAssets(t)
	var cfg amConfig
	if err := viaJSON(a.yamlFile(t, amConfigPath), &cfg); err != nil {
		t.Fatalf("%s: %v", amConfigPath, err)
	}
	wantURL := "http://" + config.Default().Listen.Address + "/v1/alertmanager"
	found := false
	for _, rc := range cfg.Receivers {
		if rc.Name != relayReceiver {
			continue
		}
		found = true
		if len(rc.WebhookConfigs) != 1 {
			t.Fatalf("receiver %s: %d webhook_configs, want 1", rc.Name, len(rc.WebhookConfigs))
		}
		w := rc.WebhookConfigs[0]
		if w.URL != wantURL {
			t.Errorf("receiver %s: url %q, want the agent's relay on its default listener, %s", rc.Name, w.URL, wantURL)
		}
		if w.SendResolved == nil || !*w.SendResolved {
			t.Errorf("receiver %s: send_resolved must be true: the relay undoes its action when the alert resolves", rc.Name)
		}
		auth := w.HTTPConfig.Authorization
		if auth.CredentialsFile != "/etc/prometheus/pmta-agent-relay.token" || auth.Credentials != "" || (auth.Type != "" && auth.Type != "Bearer") {
			t.Errorf("receiver %s: authorization %+v, want a Bearer token from /etc/prometheus/pmta-agent-relay.token", rc.Name, auth)
		}
	}
	if !found {
		t.Fatalf("%s: no receiver %s", amConfigPath, relayReceiver)
	}
	r := relayRoute(t, a)
	for _, k := range []string{"alertname", "server", "isp"} {
		if !slices.Contains(r.GroupBy, k) {
			t.Errorf("route to %s: group_by %v lacks %s", relayReceiver, r.GroupBy, k)
		}
	}

	amtool := lookTool(t, "amtool", "prometheus-alertmanager")
	runTool(t, a, amtool, "check-config", amConfigPath)
	seen := map[string]bool{}
	for _, pr := range promRules(t, a) {
		if pr.Alert == "" || seen[pr.name()] {
			continue
		}
		seen[pr.name()] = true
		want := humanReceiver
		if pr.Alert == relayAlert.alert && pr.Labels["severity"] == relayAlert.severity {
			want = relayReceiver + "," + humanReceiver
		}
		got := runTool(t, a, amtool, "config", "routes", "test", "--config.file="+amConfigPath,
			"alertname="+pr.Alert, "severity="+pr.Labels["severity"], "team="+pr.Labels["team"], "server=mta01", "isp=yahoo")
		if strings.TrimSpace(got) != want {
			t.Errorf("%s goes to %q, want %q", pr.name(), strings.TrimSpace(got), want)
		}
	}
}
