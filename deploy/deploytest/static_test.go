package deploytest

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"

	kyaml "github.com/knadh/koanf/parsers/yaml"
)

// TestDashboardsWellFormed checks what Grafana needs to import and provision
// the dashboards and what the end-to-end test relies on, without a database.
func TestDashboardsWellFormed(t *testing.T) {
	a := loadAssets(t)
	uids := map[string]string{}
	for _, d := range a.dashboards {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title must be set", d.path)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q already used by %s", d.path, d.UID, prev)
		}
		uids[d.UID] = d.path
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d; want 36 or later (datasource references by uid)", d.path, d.SchemaVersion)
		}
		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		if v, ok := vars["DS_INFLUXDB"]; !ok || v.Type != "datasource" || !strings.Contains(string(v.Query), "influxdb") {
			t.Errorf("%s: needs a datasource variable DS_INFLUXDB of type influxdb", d.path)
		}
		if _, ok := vars["server"]; !ok {
			t.Errorf("%s: needs the server variable", d.path)
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q, err := v.queryText()
			if err != nil {
				t.Error(err)
				continue
			}
			if !strings.HasPrefix(q, "SHOW TAG VALUES") {
				t.Errorf("%s: variable %s: %q is not SHOW TAG VALUES", d.path, v.Name, q)
			}
			checkInfluxRef(t, d.path+" variable "+v.Name, v.Datasource)
		}
		used := map[string]bool{}
		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			name := fmt.Sprintf("%s panel %d %q", d.path, p.ID, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: duplicate panel id", name)
			}
			ids[p.ID] = true
			checkInfluxRef(t, name, p.Datasource)
			for _, tg := range p.Targets {
				if tg.isExpr() {
					if tg.Type == "" || tg.Expression == "" {
						t.Errorf("%s: expression %s lacks type or expression", name, tg.RefID)
					}
					continue
				}
				checkInfluxRef(t, name+" target "+tg.RefID, tg.Datasource)
				if !tg.RawQuery || tg.Query == "" {
					t.Errorf("%s: target %s must be a raw InfluxQL query", name, tg.RefID)
				}
				if !strings.Contains(tg.Query, "$timeFilter") {
					t.Errorf("%s: target %s does not use $timeFilter: %s", name, tg.RefID, tg.Query)
				}
				if strings.Contains(tg.Query, "$__interval") && !strings.Contains(tg.Query, "GROUP BY time(") {
					t.Errorf("%s: target %s uses $__interval outside GROUP BY time()", name, tg.RefID)
				}
				for _, m := range refPattern.FindAllStringSubmatch(tg.Query, -1) {
					used[strings.Trim(m[1], "{}")] = true
				}
				// Template variables hold regex alternations: only =~ /^$v$/ is right.
				for name2 := range vars {
					if strings.Contains(tg.Query, "$"+name2) && !strings.Contains(tg.Query, "/^$"+name2+"$/") {
						t.Errorf("%s: target %s uses $%s outside =~ /^$%s$/", name, tg.RefID, name2, name2)
					}
				}
			}
		}
		for name, v := range vars {
			if v.Type == "query" && !used[name] {
				t.Errorf("%s: variable %s is never used by a panel", d.path, name)
			}
		}
		checkAnnotations(t, d, vars)
	}
	// The four dashboards of the issue.
	for _, uid := range []string{"pmta-fleet", "pmta-isp", "pmta-vmta", "pmta-queues"} {
		if _, ok := uids[uid]; !ok {
			t.Errorf("dashboard %s is missing", uid)
		}
	}
}

func checkInfluxRef(t *testing.T, what string, ds *dsRef) {
	t.Helper()
	if ds == nil || ds.Type != "influxdb" || ds.UID != "${DS_INFLUXDB}" {
		t.Errorf("%s: datasource %+v; want {influxdb ${DS_INFLUXDB}}", what, ds)
	}
}

// TestAlertRulesWellFormed checks the provisioning files against each other:
// rules query a data source that is provisioned, conditions exist, and the
// thresholds are those of the design.
func TestAlertRulesWellFormed(t *testing.T) {
	a := loadAssets(t)
	dsUIDs := map[string]bool{}
	for _, ds := range a.datasources {
		if uid, _ := ds["uid"].(string); uid != "" {
			if typ, _ := ds["type"].(string); typ != "influxdb" {
				t.Errorf("data source %s: type %q, want influxdb", uid, typ)
			}
			dsUIDs[uid] = true
		}
	}
	if len(dsUIDs) == 0 {
		t.Fatal("no provisioned data source with a uid in deploy/")
	}
	thresholds := map[string]float64{}
	for _, f := range a.alerts {
		if f.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", f.path, f.APIVersion)
		}
		for _, g := range f.Groups {
			if g.Name == "" || g.Folder == "" || g.Interval == "" {
				t.Errorf("%s: group %q needs name, folder and interval", f.path, g.Name)
			}
		}
		for _, r := range f.rules() {
			refs := map[string]alertQuery{}
			for _, q := range r.Data {
				refs[q.RefID] = q
				switch {
				case q.DatasourceUID == "__expr__":
					if q.Model.Type == "" {
						t.Errorf("%s: expression %s has no type", r.UID, q.RefID)
					}
				case !dsUIDs[q.DatasourceUID]:
					t.Errorf("%s: query %s uses data source %q, which deploy/ does not provision", r.UID, q.RefID, q.DatasourceUID)
				case q.RelativeTimeRange == nil || q.RelativeTimeRange.From <= q.RelativeTimeRange.To:
					t.Errorf("%s: query %s needs a relativeTimeRange", r.UID, q.RefID)
				case !strings.Contains(q.Model.Query, "$timeFilter"):
					t.Errorf("%s: query %s does not use $timeFilter", r.UID, q.RefID)
				}
			}
			c, ok := refs[r.Condition]
			if !ok {
				t.Errorf("%s: condition %q is not a refId", r.UID, r.Condition)
				continue
			}
			if c.Model.Type != "threshold" || len(c.Model.Conditions) == 0 {
				t.Errorf("%s: condition %s should be a threshold expression", r.UID, r.Condition)
				continue
			}
			if p := c.Model.Conditions[0].Evaluator.Params; len(p) > 0 {
				thresholds[r.UID] = p[0]
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s: no severity label", r.UID)
			}
		}
	}
	for uid, want := range map[string]float64{
		"pmta-queue-depth-warning": 50000, "pmta-queue-depth-critical": 100000,
		"pmta-deferral-rate-warning": 5, "pmta-deferral-rate-critical": 15,
	} {
		if got, ok := thresholds[uid]; !ok || got != want {
			t.Errorf("%s: threshold %v, want %v (DESIGN.md)", uid, got, want)
		}
	}
}

// TestMathExpressions pins the evaluator the end-to-end test relies on.
func TestMathExpressions(t *testing.T) {
	num := func(v float64, kv ...string) item {
		l := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return item{labels: l, times: []int64{0}, values: []float64{v}, number: true}
	}
	vars := map[string][]item{
		"A": {num(30, "isp", "yahoo"), num(5, "isp", "google"), num(1, "isp", "gone")},
		"B": {num(150, "isp", "yahoo"), num(100, "isp", "google"), num(10, "isp", "tiny")},
		"P": {num(10, "pool", "p1")},
		"I": {num(25, "pool", "p1", "source_ip", "192.0.2.1"), num(11, "pool", "p1", "source_ip", "192.0.2.2")},
	}
	for _, tc := range []struct {
		expr string
		want map[string]float64
	}{
		{"$A / $B * 100", map[string]float64{"isp=yahoo": 20, "isp=google": 5}},
		{"($B >= 50) * $A / $B * 100", map[string]float64{"isp=yahoo": 20, "isp=google": 5}},
		{"${A} + 2 * 3 - -1", map[string]float64{"isp=yahoo": 37, "isp=google": 12, "isp=gone": 8}},
		{"$I - $P", map[string]float64{"pool=p1,source_ip=192.0.2.1": 15, "pool=p1,source_ip=192.0.2.2": 1}},
		{"$A > 4 && $A < 10 || !$A", map[string]float64{"isp=yahoo": 0, "isp=google": 1, "isp=gone": 0}},
		{"(1 + 2) * 3 % 4", map[string]float64{"": 1}},
	} {
		n, err := parseMath(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got, err := n.eval(vars)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		m := map[string]float64{}
		for _, it := range got {
			m[labelKey(it.labels)] = it.values[0]
		}
		if len(m) != len(tc.want) {
			t.Errorf("%s = %v, want %v", tc.expr, m, tc.want)
			continue
		}
		for k, w := range tc.want {
			if g, ok := m[k]; !ok || math.Abs(g-w) > 1e-9 {
				t.Errorf("%s = %v, want %v", tc.expr, m, tc.want)
				break
			}
		}
	}
	for _, bad := range []string{"$A +", "($A", "$", "$A $B", "A ^ 2"} {
		if _, err := parseMath(bad); err == nil {
			t.Errorf("parseMath(%q) accepted it", bad)
		}
	}
	series := item{labels: map[string]string{"s": "x"}, times: []int64{1, 2, 3}, values: []float64{4, math.NaN(), 6}}
	for _, tc := range []struct {
		reducer, mode string
		want          float64
	}{{"last", "dropNN", 6}, {"sum", "dropNN", 10}, {"mean", "dropNN", 5}, {"max", "dropNN", 6}, {"min", "dropNN", 4}, {"count", "dropNN", 2}, {"count", "", 3}} {
		got, err := reduce([]item{series}, tc.reducer, tc.mode)
		if err != nil || len(got) != 1 || got[0].values[0] != tc.want {
			t.Errorf("reduce %s/%s = %v, %v; want %v", tc.reducer, tc.mode, got, err, tc.want)
		}
	}
	if got, _ := reduce([]item{series}, "sum", ""); len(got) != 1 || !math.IsNaN(got[0].values[0]) {
		t.Errorf("strict sum over a null = %v, want NaN", got)
	}
	th, err := threshold([]item{num(15), num(15.1)}, "gt", []float64{15})
	if err != nil || th[0].values[0] != 0 || th[1].values[0] != 1 {
		t.Errorf("threshold gt 15 over 15, 15.1 = %v, %v", th, err)
	}
	q, err := interpolate(`SELECT x FROM m WHERE "server" =~ /^$server$/ AND $timeFilter GROUP BY time($__interval)`,
		map[string]string{"server": "(a|b)", "timeFilter": timeFilter(time.UnixMilli(1000), time.UnixMilli(5000)), "__interval": "10s"})
	if err != nil || q != `SELECT x FROM m WHERE "server" =~ /^(a|b)$/ AND time >= 1000ms and time <= 5000ms GROUP BY time(10s)` {
		t.Errorf("interpolate = %q, %v", q, err)
	}
	if _, err := interpolate("SELECT $nope", nil); err == nil {
		t.Error("interpolate accepted an unknown variable")
	}
}

// requiredDirectives are the hardening settings of the issue, each of which
// must appear in the unit with exactly this value.
var requiredDirectives = map[string]string{
	"User":                     "pmta-agent",
	"Group":                    "pmta-agent",
	"SupplementaryGroups":      "pmta",
	"StateDirectory":           "pmta-agent",
	"ReadOnlyPaths":            "-/var/log/pmta",
	"ProtectSystem":            "strict",
	"ProtectHome":              "yes",
	"PrivateTmp":               "yes",
	"NoNewPrivileges":          "yes",
	"CapabilityBoundingSet":    "",
	"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
	"SystemCallFilter":         "@system-service",
	"Restart":                  "always",
	"Type":                     "notify",
	"WatchdogSec":              "30",
	"RestartPreventExitStatus": "3",
	"RestartSec":               "5",
	"ExecStart":                "/usr/bin/pmta-agent run -config /etc/pmta-agent/pmta-agent.yaml",
	"EnvironmentFile":          "-/etc/pmta-agent/env",
}

// TestSystemdUnit checks the unit's directives and, where systemd-analyze is
// installed, has systemd verify it.
func TestSystemdUnit(t *testing.T) {
	path := filepath.Join(moduleRoot(t), "deploy", "systemd", "pmta-agent.service")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("unit line %q is not key=value", line)
			continue
		}
		values[k] = append(values[k], v)
	}
	for k, want := range requiredDirectives {
		if !slices.Contains(values[k], want) {
			t.Errorf("%s=%q missing (have %q)", k, want, values[k])
		}
	}
	if len(values["MemoryMax"]) == 0 {
		t.Error("MemoryMax is not set")
	}
	checkPackaged(t, values)
	// The stop timeout must cover the agent's own shutdown_timeout.
	stop, err := time.ParseDuration(strings.Join(values["TimeoutStopSec"], "") + "s")
	if err != nil {
		t.Fatalf("TimeoutStopSec=%q: %v", values["TimeoutStopSec"], err)
	}
	if def := config.Default().ShutdownTimeout; stop <= def {
		t.Errorf("TimeoutStopSec=%s does not cover shutdown_timeout %s", stop, def)
	}
	if def := config.Default().StateDir; def != "/var/lib/"+requiredDirectives["StateDirectory"] {
		t.Errorf("StateDirectory=%s does not match the default state_dir %s", requiredDirectives["StateDirectory"], def)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: directives checked, systemd verification skipped")
	}
	// verify wants the ExecStart binary to exist: point it at this test binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "pmta-agent.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/bin/pmta-agent"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The man page of Documentation= comes with the package:
	// deploy/packagetest verifies the packaged unit with it.
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on unknown keys and bad values but prints them; lines
	// about other units (the host's own setup) are not findings.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(unit)) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Logf("systemd-analyze security --offline unavailable (%v); exposure not checked", err)
		return
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no exposure level in\n%s", out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", exposure)
	if exposure > 2.5 {
		t.Errorf("exposure level %.1f; the hardened unit should stay at 2.5 or below (OK)", exposure)
	}
}

// checkPackaged holds the unit to what deploy/packaging/nfpm.yaml installs:
// this very unit file, the binary ExecStart runs, and every document
// Documentation= names. (deploy/packagetest checks the built packages.)
func checkPackaged(t *testing.T, unit map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "deploy", "packaging", "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var nfpm struct {
		Contents []struct{ Src, Dst string } `json:"contents"`
	}
	m, err := kyaml.Parser().Unmarshal(b)
	if err == nil {
		err = viaJSON(m, &nfpm)
	}
	if err != nil {
		t.Fatalf("deploy/packaging/nfpm.yaml: %v", err)
	}
	installs := map[string]string{} // dst → src
	for _, c := range nfpm.Contents {
		installs[c.Dst] = c.Src
	}
	if src := installs["/usr/lib/systemd/system/pmta-agent.service"]; src != "deploy/systemd/pmta-agent.service" {
		t.Errorf("the packages install the unit from %q, not deploy/systemd/pmta-agent.service", src)
	}
	if exe := strings.Fields(strings.Join(unit["ExecStart"], " ")); len(exe) == 0 || installs[exe[0]] == "" {
		t.Errorf("ExecStart=%q: the packages do not install that binary", unit["ExecStart"])
	}
	man := regexp.MustCompile(`^man:([^()]+)\(([0-9][a-z]*)\)$`)
	docs := strings.Fields(strings.Join(unit["Documentation"], " "))
	if len(docs) == 0 {
		t.Error("no Documentation=")
	}
	for _, uri := range docs {
		path, isFile := strings.CutPrefix(uri, "file:")
		if m := man.FindStringSubmatch(uri); m != nil {
			path, isFile = "/usr/share/man/man"+m[2][:1]+"/"+m[1]+"."+m[2]+".gz", true
		}
		if !isFile || installs[path] == "" {
			t.Errorf("Documentation=%s: not a document the packages install (deploy/packaging/nfpm.yaml)", uri)
		}
	}
}

// checkScrape reads deploy/prometheus/scrape.yml and fetches its metrics
// path from a running agent whose listener is at addr.
func checkScrape(t *testing.T, a *assets, addr string) {
	m := a.yamlFile(t, "prometheus/scrape.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			Scheme        string `json:"scheme"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := viaJSON(m, &cfg); err != nil {
		t.Fatal(err)
	}
	def := config.Default().Listen.Address
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if !slices.Contains(st.Targets, def) {
				continue
			}
			found = true
			path := sc.MetricsPath
			if path == "" {
				path = "/metrics"
			}
			if sc.Scheme != "" && sc.Scheme != "http" {
				t.Errorf("job %s: scheme %q; the agent's listener speaks http", sc.JobName, sc.Scheme)
			}
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatalf("GET %s from the agent: %v", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "# TYPE pmta_agent_") {
				t.Errorf("GET %s: HTTP %d, want Prometheus text with pmta_agent_ families:\n%.500s", path, resp.StatusCode, body)
			}
		}
	}
	if !found {
		t.Errorf("prometheus/scrape.yml has no job scraping the agent's default listener %s", def)
	}
}
