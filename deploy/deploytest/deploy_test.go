package deploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

const (
	testDB = "pmta"
	// The three agents, and a fourth server that stopped reporting.
	serverNormal = "mta-normal" // default traffic mix; google's deferrals halved half-way
	serverHot    = "mta-hot"    // microsoft throttles a pool, one yahoo IP's reputation; 120,000 extra queued
	serverDrop   = "mta-drop"   // tiny sink buffer, loses points in an InfluxDB outage
	serverGone   = "mta-gone"   // reported until 25 minutes ago
	// mta-hot: microsoft defers 30 % of the attempts from every IP of its
	// pool (pool-wide: the deferral rate is critical, the verdict 2)…
	hotISP  = "microsoft"
	hotPool = "pool-microsoft"
	// … and yahoo 40 % of those from one IP, the first of pool-yahoo
	// (IP-specific: verdict 1; yahoo's deferral rate, about 12 %, warns).
	ipISP  = "yahoo"
	ipPool = "pool-yahoo"
	hotIP  = "203.0.113.21"
	// mta-normal: google defers 8 % until an operator's change half-way
	// through the accounting records, 4 % after it (pmta_impact: better).
	changeISP = "google"
)

// ruleExpectations says, for every alert rule in deploy/, which label sets
// must fire once the simulators are in their states; every other label set
// (the normal servers) must not. A rule missing here fails the test, so a new
// rule needs a scenario.
var ruleExpectations = map[string]struct {
	exact   []string // the firing set, exactly
	atLeast []string // label sets that must be among the firing ones
}{
	"pmta-queue-depth-warning":    {exact: []string{"server=" + serverHot}},
	"pmta-queue-depth-critical":   {exact: []string{"server=" + serverHot}},
	"pmta-deferral-rate-warning":  {exact: []string{"isp=" + hotISP + ",server=" + serverHot, "isp=" + ipISP + ",server=" + serverHot}},
	"pmta-deferral-rate-critical": {exact: []string{"isp=" + hotISP + ",server=" + serverHot}},
	"pmta-agent-not-reporting":    {exact: []string{"server=" + serverGone}},
	"pmta-agent-points-dropped":   {exact: []string{"component=sink_influx,server=" + serverDrop}},
	"pmta-ip-specific-deferrals":  {exact: []string{"isp=" + ipISP + ",pool=" + ipPool + ",server=" + serverHot + ",source_ip=" + hotIP}},
	"pmta-pool-wide-deferrals":    {exact: []string{"isp=" + hotISP + ",pool=" + hotPool + ",server=" + serverHot}},
}

// TestAssetsAgainstRealData runs the real agent against simulated PowerMTAs
// into a real InfluxDB, then runs every dashboard and alert query of deploy/
// against what arrived.
func TestAssetsAgainstRealData(t *testing.T) {
	start := time.Now()
	a := loadAssets(t)
	srv := startInflux(t, testDB)
	bin := buildAgent(t, moduleRoot(t), t.TempDir())

	// The seeds give records whose small ISPs (50 to 150 attempts in 15
	// minutes, 1 to 3 % deferred) stay clearly below the 5 % warning in the
	// alert rules' window, wherever it starts in the minute after the last
	// record: at these volumes chance alone takes one over 5 % in some seeds.
	normal, hot := newSimServer(t, 23), newSimServer(t, 41)
	// The alerting state is set before the accounting records are written:
	// the writer draws records from the model's current mix.
	if ip := firstPoolIP(t, hot, ipPool); ip != hotIP {
		t.Fatalf("the first IP of %s is %s, not %s: the simulator's topology changed", ipPool, ip, hotIP)
	}
	hot.sim.SetIPDeferralRate(ipISP, hotIP, 0.40)
	hot.sim.SetPoolDeferralRate(hotISP, hotPool, 0.30)
	hot.sim.SetQueueBoost(120_000)
	normal.sim.SetDeferralRate(changeISP, 0.08)
	changedAt := normal.writeAcct(t, 30*time.Minute, 20, func() { normal.sim.SetDeferralRate(changeISP, 0.04) })
	hot.writeAcct(t, 30*time.Minute, 20, nil)

	listen := freeAddr(t)
	procs := []*agentProc{
		startAgent(t, bin, agentSpec{server: serverNormal, apiURL: normal.url, acctDir: normal.acctDir, listen: listen, relay: relayTokensFile(t)}, srv.URL, testDB),
		startAgent(t, bin, agentSpec{server: serverHot, apiURL: hot.url, acctDir: hot.acctDir}, srv.URL, testDB),
		startAgent(t, bin, agentSpec{server: serverDrop, apiURL: normal.url, statusOff: true, memPoints: 10}, srv.URL, testDB),
	}
	waitFor(t, "every accounting record and two polls of every server", 60*time.Second, procs, func() bool {
		for _, s := range []struct {
			name string
			sim  *simServer
		}{{serverNormal, normal}, {serverHot, hot}} {
			got := scalar(t, srv, testDB, fmt.Sprintf(`SELECT sum("count") FROM "pmta_acct" WHERE "server" = '%s'`, s.name))
			if got < float64(s.sim.written) {
				return false
			}
			if got > float64(s.sim.written) {
				t.Fatalf("%s: sum(count) = %v exceeds the %d records written", s.name, got, s.sim.written)
			}
		}
		for _, s := range []string{serverNormal, serverHot, serverDrop} {
			if scalar(t, srv, testDB, fmt.Sprintf(`SELECT count("out_rcp_per_sec") FROM "pmta_status" WHERE "server" = '%s'`, s)) < 2 {
				return false
			}
		}
		return scalar(t, srv, testDB, `SELECT count("rcp") FROM "pmta_vmta"`) > 0
	})

	// An InfluxDB outage: mta-drop's 10-point memory buffer overflows, the
	// others keep everything in their disk queues until InfluxDB is back.
	srv.Stop()
	time.Sleep(6 * time.Second)
	srv.Restart()
	waitFor(t, "mta-drop to report dropped points", 30*time.Second, procs, func() bool {
		return scalar(t, srv, testDB, fmt.Sprintf(`SELECT max("dropped_points") FROM "pmta_agent" WHERE "server" = '%s'`, serverDrop)) > 0
	})
	// Polls after the outage, so that panels over the last minutes have data.
	time.Sleep(3 * time.Second)
	// Operators and Alertmanager act through mta-normal's relay: the
	// pmta_event points of the dashboards' annotation layers.
	relayEvents := actThroughRelay(t, srv, procs, serverNormal, listen)
	// An operator raises a rate in PowerMTA's configuration: the
	// config_change points of the configuration layer.
	changePowerMTAConfig(t, srv, serverNormal)

	t.Run("prometheus_scrape", func(t *testing.T) { checkScrape(t, a, listen) })

	copyReports(t, srv, serverNormal, serverGone, 25*time.Minute)
	waitForVerdicts(t, srv, procs, map[string]time.Time{serverNormal: normal.end, serverHot: hot.end})
	for _, p := range procs {
		p.stop(t)
	}
	// The operator asks what the change did, and sends the answer to
	// InfluxDB for the change-impact panel (with the agent stopped: the
	// command uses its configuration and its sinks' state directory).
	sendImpact(t, bin, procs[0], changedAt) // mta-normal's agent
	t.Logf("environment ready in %s", time.Since(start).Round(time.Millisecond))

	t.Run("dashboards", func(t *testing.T) {
		for _, d := range a.dashboards {
			t.Run(d.UID, func(t *testing.T) { checkDashboard(t, srv, d) })
		}
	})
	t.Run("annotations", func(t *testing.T) {
		for _, d := range a.dashboards {
			t.Run(d.UID, func(t *testing.T) { checkAnnotationLayers(t, srv, d, relayEvents) })
		}
	})
	t.Run("verdicts", func(t *testing.T) { checkVerdicts(t, srv, a) })
	t.Run("impact", func(t *testing.T) { checkImpact(t, srv, a, changedAt) })
	t.Run("alerts", func(t *testing.T) {
		seen := map[string]bool{}
		for _, f := range a.alerts {
			for _, r := range f.rules() {
				seen[r.UID] = true
				t.Run(r.UID, func(t *testing.T) { checkRule(t, srv, r) })
			}
		}
		for uid := range ruleExpectations {
			if !seen[uid] {
				t.Errorf("expected alert rule %s is not in deploy/", uid)
			}
		}
	})
}

// checkDashboard runs every variable, panel query and panel expression of a
// dashboard; each must return data.
func checkDashboard(t *testing.T, srv *influxtest.Server, d dashboard) {
	vars, err := resolveVariables(srv, testDB, d, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", d.path, err)
	}
	panels := d.allPanels()
	if len(panels) == 0 {
		t.Fatalf("%s has no panels", d.path)
	}
	for _, p := range panels {
		name := fmt.Sprintf("%s panel %d %q", d.path, p.ID, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("%s has no queries", name)
			continue
		}
		pv, err := intervalVars(vars, p.Interval)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		results := map[string][]item{}
		for _, tg := range p.Targets {
			if tg.isExpr() {
				items, err := evalExpr(tg, results)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !hasData(items) {
					t.Errorf("%s: expression %s (%s) produced no data", name, tg.RefID, tg.Expression)
				}
				results[tg.RefID] = items
				continue
			}
			items, _, err := runTarget(srv, testDB, tg, pv)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			results[tg.RefID] = items
		}
	}
}

// checkRule evaluates an alert rule and compares the firing label sets with
// the expectation.
func checkRule(t *testing.T, srv *influxtest.Server, r alertRule) {
	want, ok := ruleExpectations[r.UID]
	if !ok {
		t.Fatalf("alert rule %s (%q) has no scenario in ruleExpectations", r.UID, r.Title)
	}
	res, err := evalRule(srv, testDB, r, time.Now())
	if err != nil {
		t.Fatalf("%s: %v\n%s", r.UID, err, res.describe())
	}
	got := slices.Sorted(slices.Values(res.firing))
	switch {
	case want.exact != nil:
		if !slices.Equal(got, slices.Sorted(slices.Values(want.exact))) {
			t.Errorf("%s fires for %v, want exactly %v\n%s", r.UID, got, want.exact, res.describe())
		}
	default:
		for _, w := range want.atLeast {
			if !slices.Contains(got, w) {
				t.Errorf("%s fires for %v, want %s among them\n%s", r.UID, got, w, res.describe())
			}
		}
	}
	t.Logf("%s: fires for %v", r.UID, got)
}

// copyReports copies the pipeline self-reports of server from, shifted back
// by ago, to server to: a host whose agent reported and then went silent.
func copyReports(t *testing.T, srv *influxtest.Server, from, to string, ago time.Duration) {
	t.Helper()
	series, err := srv.Query(testDB, fmt.Sprintf(`SELECT * FROM "pmta_agent" WHERE "server" = '%s' AND "component" = 'pipeline'`, from))
	if err != nil {
		t.Fatal(err)
	}
	var pts []agent.Point
	for _, s := range series {
		for _, row := range s.Values {
			var fields []agent.Field
			var ts time.Time
			for i, c := range s.Columns {
				n, ok := row[i].(json.Number)
				switch {
				case c == "time" && ok:
					ns, _ := n.Int64()
					ts = time.Unix(0, ns).Add(-ago)
				case c == "server" || c == "component" || row[i] == nil || !ok:
				default:
					if v, err := n.Int64(); err == nil {
						fields = append(fields, agent.Field{Key: c, Value: v})
					} else if f, err := n.Float64(); err == nil {
						fields = append(fields, agent.Field{Key: c, Value: f})
					}
				}
			}
			pts = append(pts, agent.NewPoint("pmta_agent", []agent.Tag{{Key: "server", Value: to}, {Key: "component", Value: "pipeline"}}, fields, ts))
		}
	}
	if len(pts) == 0 {
		t.Fatalf("no pipeline reports of %s to copy", from)
	}
	resp, err := http.Post(srv.URL+"/write?db="+testDB+"&precision=ns", "text/plain", strings.NewReader(string(agent.LineProtocol(pts))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("write reports of %s: HTTP %d: %s", to, resp.StatusCode, b)
	}
}
