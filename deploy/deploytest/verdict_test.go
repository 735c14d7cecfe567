package deploytest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// This file drives the agent's two analyses end to end: the IP vs pool
// verdicts (pmta_verdict) the running agents judge from the simulators'
// accounting records, and the impact of a configuration change
// (pmta_impact) that `pmta-agent impact -send` writes. It checks the points
// in InfluxDB, and what the panels that show them return.

// verdictEvery is acct.verdict.every in agentConfig: the verdicts' step.
const verdictEvery = time.Minute

// firstPoolIP is the source IP of the first vmta (by name) of a pool of the
// simulator.
func firstPoolIP(t *testing.T, s *simServer, pool string) string {
	t.Helper()
	var names []string
	ips := map[string]string{}
	for _, v := range s.sim.Snapshot().VMTAs {
		if v.Pool == pool {
			names = append(names, v.Name)
			ips[v.Name] = v.SourceIP
		}
	}
	if len(names) == 0 {
		t.Fatalf("the simulator has no vmta in %s", pool)
	}
	slices.Sort(names)
	return ips[names[0]]
}

// waitForVerdicts waits until each server's agent has judged the window
// that ends with the last full step of its accounting records.
func waitForVerdicts(t *testing.T, srv *influxtest.Server, procs []*agentProc, ends map[string]time.Time) {
	t.Helper()
	waitFor(t, "the verdicts of the last window of records", 60*time.Second, procs, func() bool {
		for server, end := range ends {
			latest, ok := latestVerdict(t, srv, server)
			if !ok || latest.Before(end.Truncate(verdictEvery)) {
				return false
			}
		}
		return true
	})
}

// latestVerdict is the time of a server's latest pmta_verdict points.
func latestVerdict(t testing.TB, srv *influxtest.Server, server string) (time.Time, bool) {
	t.Helper()
	series, err := srv.Query(testDB, fmt.Sprintf(`SELECT last("verdict") FROM "pmta_verdict" WHERE "server" = '%s'`, server))
	if err != nil {
		t.Fatal(err)
	}
	if len(series) == 0 || len(series[0].Values) == 0 {
		return time.Time{}, false
	}
	n, ok := series[0].Values[0][0].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	ns, err := n.Int64()
	return time.Unix(0, ns), err == nil
}

// row is one point or table row: its tags and its numeric fields.
type row struct {
	time   int64 // ns
	tags   map[string]string
	fields map[string]float64
}

func (r row) String() string {
	var b strings.Builder
	b.WriteString(labelKey(r.tags))
	for _, k := range slices.Sorted(maps.Keys(r.fields)) {
		fmt.Fprintf(&b, " %s=%g", k, r.fields[k])
	}
	return b.String()
}

// rows turns a query result into rows; tags come from the series (GROUP BY)
// and from string columns, numbers are fields, nulls are left out.
func rows(series []influxtest.Series) []row {
	var out []row
	for _, s := range series {
		for _, vals := range s.Values {
			r := row{tags: map[string]string{}, fields: map[string]float64{}}
			for k, v := range s.Tags {
				r.tags[k] = v
			}
			for i, c := range s.Columns {
				switch v := vals[i].(type) {
				case json.Number:
					if c == "time" {
						r.time, _ = v.Int64()
					} else if f, err := v.Float64(); err == nil {
						r.fields[c] = f
					}
				case string:
					r.tags[c] = v
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// verdictRows returns a server's latest pmta_verdict points.
func verdictRows(t *testing.T, srv *influxtest.Server, server string) []row {
	t.Helper()
	latest, ok := latestVerdict(t, srv, server)
	if !ok {
		t.Fatalf("%s: no pmta_verdict points", server)
	}
	series, err := srv.Query(testDB, fmt.Sprintf(`SELECT * FROM "pmta_verdict" WHERE "server" = '%s' AND time = %d GROUP BY *`, server, latest.UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	return rows(series)
}

// checkVerdicts holds the agents' latest verdicts to the simulators'
// states: on mta-hot, verdict 1 for exactly the yahoo IP whose rate was
// raised (and ip_specific on its pool's row), 2 for microsoft's throttled
// pool and its IPs; 0 everywhere else there is the volume to judge, on
// mta-normal too; and the panels of the source-IP dashboard that show them.
func checkVerdicts(t *testing.T, srv *influxtest.Server, a *assets) {
	values := map[float64]int{}
	for _, server := range []string{serverNormal, serverHot} {
		rs := verdictRows(t, srv, server)
		var ipRow, ipPoolRow, poolRow bool
		for _, r := range rs {
			v, ok := r.fields["verdict"]
			if !ok {
				t.Errorf("%s: no verdict field: %s", server, r)
				continue
			}
			values[v]++
			scope, isp, pool := r.tags["scope"], r.tags["isp"], r.tags["pool"]
			want := []float64{0, -1} // ok, or too few attempts to judge
			switch {
			case server != serverHot:
			case scope == "ip" && isp == ipISP && pool == ipPool && r.tags["source_ip"] == hotIP:
				ipRow, want = true, []float64{1}
				checkRange(t, r, "deferral_pct", 30, 50)
				checkRange(t, r, "pool_median_pct", 0, 10)
				checkRange(t, r, "score", 3.5, math.Inf(1))
				checkRange(t, r, "attempts", 200, math.Inf(1))
			case scope == "pool" && isp == ipISP && pool == ipPool:
				ipPoolRow, want = true, []float64{1}
			case scope == "pool" && isp == hotISP && pool == hotPool:
				poolRow, want = true, []float64{2}
				checkRange(t, r, "pool_deferral_pct", 25, 35)
				checkRange(t, r, "ips", 2, math.Inf(1))
				if r.fields["ips_above"] != r.fields["ips"] {
					t.Errorf("%s: %s: every IP with volume is above the warning: ips_above should equal ips", server, r)
				}
			case scope == "ip" && isp == hotISP && pool == hotPool:
				want = []float64{2, -1} // the pool's IPs are pool-wide, unless too few
			}
			if !slices.Contains(want, v) {
				t.Errorf("%s: verdict %g, want one of %v: %s", server, v, want, r)
			}
		}
		if server == serverHot && (!ipRow || !ipPoolRow || !poolRow) {
			t.Errorf("%s: rows of %s at %s (%v), of %s's pool (%v), of %s at %s (%v) missing among\n%s",
				server, hotIP, ipISP, ipRow, ipPool, ipPoolRow, hotPool, hotISP, poolRow, joinRows(rs))
		}
		t.Logf("%s: %d verdict rows at the latest step", server, len(rs))
	}
	for _, v := range []float64{-1, 0, 1, 2} {
		if values[v] == 0 {
			t.Errorf("no verdict %g among the latest: the scenarios should give every value (%v)", v, values)
		}
	}
	checkVerdictTable(t, srv, a)
}

func checkRange(t *testing.T, r row, field string, lo, hi float64) {
	t.Helper()
	if v, ok := r.fields[field]; !ok || v < lo || v > hi {
		t.Errorf("%s: %s not within [%g, %g]", r, field, lo, hi)
	}
}

func joinRows(rs []row) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	return b.String()
}

// dashboardByUID returns a dashboard of deploy/.
func dashboardByUID(t *testing.T, a *assets, uid string) dashboard {
	t.Helper()
	i := slices.IndexFunc(a.dashboards, func(d dashboard) bool { return d.UID == uid })
	if i < 0 {
		t.Fatalf("dashboard %s is missing", uid)
	}
	return a.dashboards[i]
}

// tableRows runs the table queries of a dashboard's panels that read a
// measurement, with every variable at All, and returns their rows.
func tableRows(t *testing.T, srv *influxtest.Server, d dashboard, measurement string) []row {
	t.Helper()
	vars, err := resolveVariables(srv, testDB, d, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", d.path, err)
	}
	var out []row
	found := false
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			if tg.ResultFormat != "table" || !strings.Contains(tg.Query, `FROM "`+measurement+`"`) {
				continue
			}
			found = true
			q, err := interpolate(tg.Query, vars)
			if err != nil {
				t.Fatal(err)
			}
			series, err := srv.Query(testDB, q)
			if err != nil {
				t.Fatalf("%s panel %q: %v", d.path, p.Title, err)
			}
			out = append(out, rows(series)...)
		}
	}
	if !found {
		t.Fatalf("%s: no table panel reads %s", d.path, measurement)
	}
	return out
}

// checkVerdictTable runs the source-IP dashboard's verdict table as Grafana
// would: its latest row for the yahoo IP says IP-specific, the one of
// microsoft's pool pool-wide, with the columns the panel shows.
func checkVerdictTable(t *testing.T, srv *influxtest.Server, a *assets) {
	rs := tableRows(t, srv, dashboardByUID(t, a, "pmta-vmta"), "pmta_verdict")
	var ip, pool bool
	for _, r := range rs {
		if r.tags["server"] != serverHot {
			continue
		}
		switch {
		case r.tags["scope"] == "ip" && r.tags["source_ip"] == hotIP && r.tags["isp"] == ipISP:
			ip = true
			if r.fields["verdict"] != 1 {
				t.Errorf("verdict table: %s, want verdict 1", r)
			}
			for _, f := range []string{"deferral_pct", "pool_median_pct", "attempts", "score"} {
				if _, ok := r.fields[f]; !ok {
					t.Errorf("verdict table: no %s in %s", f, r)
				}
			}
		case r.tags["scope"] == "pool" && r.tags["pool"] == hotPool && r.tags["isp"] == hotISP:
			pool = true
			if r.fields["verdict"] != 2 {
				t.Errorf("verdict table: %s, want verdict 2", r)
			}
		}
	}
	if !ip || !pool {
		t.Errorf("verdict table: the row of %s (%v) or of %s (%v) is missing among\n%s", hotIP, ip, hotPool, pool, joinRows(rs))
	}
}

// impactFocus is what the operator's change touched, as `impact -focus`
// names it: gmail.com, whose deferrals fell, and yahoo.com, whose did not
// (the expected effect absent).
var impactFocus = []string{"domain=gmail.com", "domain=yahoo.com"}

// sendImpact runs `pmta-agent impact -send` with an agent's configuration
// over its accounting files, for the change at `at`, 15 minutes before and
// after: the pmta_impact points of the change-impact panel.
func sendImpact(t *testing.T, bin string, p *agentProc, at time.Time) {
	t.Helper()
	args := []string{"impact", "-config", p.config, "-at", at.UTC().Format(time.RFC3339), "-window", "15m", "-send"}
	for _, f := range impactFocus {
		args = append(args, "-focus", f)
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pmta-agent %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("pmta-agent %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
}

// checkImpact holds the pmta_impact points to the change mta-normal's
// simulator made — google's deferrals halved at `at` — and runs the
// deliverability dashboard's change-impact table over them.
func checkImpact(t *testing.T, srv *influxtest.Server, a *assets, at time.Time) {
	series, err := srv.Query(testDB, fmt.Sprintf(`SELECT * FROM "pmta_impact" WHERE "server" = '%s' GROUP BY *`, serverNormal))
	if err != nil {
		t.Fatal(err)
	}
	points := rows(series)
	if len(points) == 0 {
		t.Fatal("no pmta_impact points")
	}
	for _, r := range points {
		if r.time != at.UnixNano() {
			t.Errorf("%s at %s, want the change's time %s", r, time.Unix(0, r.time).UTC(), at.UTC())
		}
		if r.fields["window_s"] != 900 {
			t.Errorf("%s: window_s, want 900", r)
		}
	}
	checkImpactRows(t, "pmta_impact", points)
	checkImpactRows(t, "change-impact table", tableRows(t, srv, dashboardByUID(t, a, "pmta-isp"), "pmta_impact"))
}

// checkImpactRows checks the rows of the change: google better (its ISP
// row, and gmail.com, which the change touched); yahoo.com, touched too,
// not better and flagged as the expected effect absent.
func checkImpactRows(t *testing.T, what string, rs []row) {
	t.Helper()
	find := func(kind, name, touched string) (row, bool) {
		for _, r := range rs {
			if r.tags["kind"] == kind && r.tags["name"] == name && r.tags["touched"] == touched {
				return r, true
			}
		}
		t.Errorf("%s: no row kind=%s name=%s touched=%s among\n%s", what, kind, name, touched, joinRows(rs))
		return row{}, false
	}
	for _, w := range []struct {
		kind, name, touched string
		verdicts            []float64
		absent              float64
	}{
		{"isp", changeISP, "no", []float64{1}, 0},
		{"domain", "gmail.com", "yes", []float64{1}, 0},
		{"domain", "yahoo.com", "yes", []float64{0, 2}, 1},
	} {
		r, ok := find(w.kind, w.name, w.touched)
		if !ok {
			continue
		}
		if !slices.Contains(w.verdicts, r.fields["verdict"]) || r.fields["effect_absent"] != w.absent {
			t.Errorf("%s: %s: want verdict in %v and effect_absent %g", what, r, w.verdicts, w.absent)
		}
		checkRange(t, r, "before_attempts", 200, math.Inf(1))
		checkRange(t, r, "after_attempts", 200, math.Inf(1))
		if w.verdicts[0] == 1 {
			checkRange(t, r, "before_deferral_pct", 6, 10)
			checkRange(t, r, "after_deferral_pct", 2.5, 5.5)
		}
	}
}

// mappedTexts returns the texts of a panel's value mappings (type value)
// for a field: those of an override matching the field by name, else the
// defaults.
func mappedTexts(p panel, field string) map[string]string {
	collect := func(ms []valueMapping) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			if m.Type != "value" {
				continue
			}
			for v, o := range m.Options {
				out[v] = o.Text
			}
		}
		return out
	}
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID != "byName" || o.Matcher.Options != field {
			continue
		}
		for _, pr := range o.Properties {
			var ms []valueMapping
			if pr.ID == "mappings" && json.Unmarshal(pr.Value, &ms) == nil {
				return collect(ms)
			}
		}
	}
	return collect(p.FieldConfig.Defaults.Mappings)
}

// TestVerdictPanelsWellFormed checks, without a database, the panels of the
// agent's analyses: the source-IP dashboard's verdict table (per ISP, pool,
// scope and source IP, with the deferral %, the pool's median, attempts and
// score) and state timeline per IP, and the deliverability dashboard's
// change-impact table, each saying in words what a verdict's number means.
func TestVerdictPanelsWellFormed(t *testing.T) {
	a := loadAssets(t)
	verdictWords := map[string]string{"-1": "too few", "0": "ok", "1": "IP-specific", "2": "pool-wide"}
	impactWords := map[string]string{"-1": "too few", "0": "no change", "1": "better", "2": "worse"}
	for _, tc := range []struct {
		uid, panelType, measurement string
		query                       []string // in the query
		field                       string   // "verdict", as the table names it after the rename
		words                       map[string]string
		flag                        string // a 0/1 field mapped to words at 1
	}{
		{"pmta-vmta", "table", "pmta_verdict",
			[]string{`"deferral_pct"`, `"pool_median_pct"`, `"attempts"`, `"score"`, `GROUP BY "server", "isp", "pool", "scope", "source_ip"`},
			"verdict", verdictWords, ""},
		{"pmta-vmta", "state-timeline", "pmta_verdict",
			[]string{`"scope" = 'ip'`, `"source_ip"`},
			"", verdictWords, ""},
		{"pmta-isp", "table", "pmta_impact",
			[]string{`"before_attempts"`, `"after_attempts"`, `"before_deferral_pct"`, `"after_deferral_pct"`, `"verdict"`, `"effect_absent"`, `GROUP BY "server", "kind", "name", "touched"`},
			"verdict", impactWords, "effect"},
	} {
		d := dashboardByUID(t, a, tc.uid)
		found := false
		for _, p := range d.allPanels() {
			if p.Type != tc.panelType || len(p.Targets) != 1 || !strings.Contains(p.Targets[0].Query, `FROM "`+tc.measurement+`"`) {
				continue
			}
			found = true
			name := fmt.Sprintf("%s panel %d %q", d.path, p.ID, p.Title)
			for _, q := range tc.query {
				if !strings.Contains(p.Targets[0].Query, q) {
					t.Errorf("%s: query lacks %s: %s", name, q, p.Targets[0].Query)
				}
			}
			texts := mappedTexts(p, tc.field)
			for v, w := range tc.words {
				if !strings.Contains(texts[v], w) {
					t.Errorf("%s: %s %s is mapped to %q, want words with %q", name, cmp.Or(tc.field, "the value"), v, texts[v], w)
				}
			}
			if tc.flag != "" && !strings.Contains(mappedTexts(p, tc.flag)["1"], "effect absent") {
				t.Errorf("%s: %s 1 is not mapped to words saying the expected effect is absent", name, tc.flag)
			}
		}
		if !found {
			t.Errorf("%s: no %s panel with one query of %s", tc.uid, tc.panelType, tc.measurement)
		}
	}
}
