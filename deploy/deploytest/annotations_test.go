package deploytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// This file holds the dashboards' annotation layers to what Grafana does
// with them: the relay's pmta_event points (README, "Acting on PowerMTA:
// the relay") shown as who paused what, and what was refused.
//
// InfluxQL cannot join strings, so an InfluxDB annotation is one text
// column and a list of tag columns. Grafana maps the columns of the rows in
// two ways, and the dashboards must work with both:
//
//   - Grafana 10 (public/app/plugins/datasource/influxdb/influx_series.ts,
//     getAnnotations): columns named as InfluxDB names them, compared
//     exactly; a null becomes a missing tag or text.
//   - Grafana 11, where influxdbBackendMigration is on by default
//     (response_parser.ts, transformAnnotationResponse): each column is a
//     frame named "measurement.column", tag and text columns are matched by
//     substring — an empty tagsColumn makes every column a tag —, and a row
//     with a null in any selected column is dropped.
//
// So a layer selects only columns its rows always have, and both mappings
// must agree on every column's role: checkAnnotations checks it statically,
// annotationEvents refuses rows with a null.

// annotation is one entry of a dashboard's annotations.list.
type annotation struct {
	BuiltIn    int               `json:"builtIn"`
	Datasource *dsRef            `json:"datasource"`
	Enable     bool              `json:"enable"`
	Hide       bool              `json:"hide"`
	IconColor  string            `json:"iconColor"`
	Name       string            `json:"name"`
	Target     *annotationTarget `json:"target"`
	// Query on the annotation itself is the layout of Grafana before 9;
	// Grafana reads it only when there is no target.
	Query string `json:"query"`
}

// annotationTarget is an InfluxQL annotation query as Grafana 10 and 11
// save it.
type annotationTarget struct {
	RefID           string `json:"refId"`
	Query           string `json:"query"`
	RawQuery        bool   `json:"rawQuery"`
	FromAnnotations bool   `json:"fromAnnotations"`
	TextColumn      string `json:"textColumn"`
	TagsColumn      string `json:"tagsColumn"`
	TitleColumn     string `json:"titleColumn"`
	TimeEndColumn   string `json:"timeEndColumn"`
}

// queryAnnotations are the annotations that run a query, without Grafana's
// built-in one.
func (d dashboard) queryAnnotations() []annotation {
	var out []annotation
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 0 {
			out = append(out, a)
		}
	}
	return out
}

// actionDashboards are the dashboards on which an operator acts on queues or
// judges a source IP: each shows the relay's actions and refusals.
var actionDashboards = []string{"pmta-queues", "pmta-isp", "pmta-fleet", "pmta-vmta"}

// readsEvents reports whether an annotation query shows pmta_event points.
func readsEvents(q string) bool { return strings.Contains(q, `FROM "pmta_event"`) }

var (
	selectList = regexp.MustCompile(`(?is)^\s*SELECT\s+(.*?)\s+FROM\s+"?([A-Za-z0-9_.]+)"?`)
	plainName  = regexp.MustCompile(`^"?([A-Za-z_][A-Za-z0-9_]*)"?$`)
)

// selectedColumns returns the measurement and the columns a query selects;
// only plain columns, so that the names Grafana sees are known.
func selectedColumns(q string) (string, []string, error) {
	m := selectList.FindStringSubmatch(q)
	if m == nil {
		return "", nil, fmt.Errorf("not SELECT … FROM: %s", q)
	}
	var cols []string
	for _, c := range strings.Split(m[1], ",") {
		n := plainName.FindStringSubmatch(strings.TrimSpace(c))
		if n == nil {
			return "", nil, fmt.Errorf("select %q: an annotation selects plain columns", strings.TrimSpace(c))
		}
		cols = append(cols, n[1])
	}
	return m[2], cols, nil
}

// Column roles in an annotation.
const (
	roleNone = iota
	roleTime
	roleTitle
	roleTag
	roleText
	roleTimeEnd
)

// tagColumns splits tagsColumn as Grafana does (it removes the first space
// only).
func tagColumns(tg annotationTarget) []string {
	return strings.Split(strings.Replace(tg.TagsColumn, " ", "", 1), ",")
}

// rolesV10 maps columns as Grafana 10's getAnnotations does.
func rolesV10(cols []string, tg annotationTarget) []int {
	roles := make([]int, len(cols))
	title, text := -1, -1
	for i, c := range cols {
		switch {
		case c == "time":
			roles[i] = roleTime
		case c == "sequence_number":
		case c == tg.TitleColumn:
			roles[i], title = roleTitle, i
		case slices.Contains(tagColumns(tg), c):
			roles[i] = roleTag
		case c == tg.TextColumn:
			roles[i], text = roleText, i
		case c == tg.TimeEndColumn:
			roles[i] = roleTimeEnd
		case title < 0 && text != i: // "legacy case": the first other column is the title
			roles[i], title = roleTitle, i
		}
	}
	return roles
}

// rolesV11 maps columns as Grafana 11's transformAnnotationResponse does,
// on frames named measurement.column.
func rolesV11(measurement string, cols []string, tg annotationTarget) []int {
	roles := make([]int, len(cols))
	title, text := -1, -1
	for i, c := range cols {
		name := measurement + "." + c
		if c == "time" {
			name = "Time"
		}
		switch {
		case strings.ToLower(name) == "time":
			roles[i] = roleTime
		case name == tg.TitleColumn:
			roles[i], title = roleTitle, i
		case slices.ContainsFunc(tagColumns(tg), func(t string) bool { return strings.Contains(name, t) }):
			roles[i] = roleTag
		case strings.Contains(name, tg.TextColumn):
			roles[i], text = roleText, i
		case name == tg.TimeEndColumn:
			roles[i] = roleTimeEnd
		case title < 0 && text != i:
			roles[i], title = roleTitle, i
		}
	}
	return roles
}

// checkAnnotations checks a dashboard's annotation layers: what Grafana
// needs to run them, and that Grafana 10 and 11 read their columns alike.
func checkAnnotations(t *testing.T, d dashboard, vars map[string]variable) {
	t.Helper()
	builtIn := false
	names, colours := map[string]bool{}, map[string]bool{}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			builtIn = true
			continue
		}
		name := fmt.Sprintf("%s annotation %q", d.path, a.Name)
		if a.Name == "" || names[a.Name] {
			t.Errorf("%s: needs a name of its own", name)
		}
		names[a.Name] = true
		if a.IconColor == "" || colours[a.IconColor] {
			t.Errorf("%s: needs an icon colour of its own (%q)", name, a.IconColor)
		}
		colours[a.IconColor] = true
		checkInfluxRef(t, name, a.Datasource)
		if !a.Enable || a.Hide {
			t.Errorf("%s: must be on by default and its toggle shown (enable %v, hide %v)", name, a.Enable, a.Hide)
		}
		if a.Query != "" {
			t.Errorf("%s: a query on the annotation itself (the layout before Grafana 9); Grafana 10 and 11 read target.query", name)
		}
		if a.Target == nil || strings.TrimSpace(a.Target.Query) == "" {
			t.Errorf("%s: no target.query", name)
			continue
		}
		tg := *a.Target
		// Without fromAnnotations Grafana runs it as a panel query and makes
		// no events of it.
		if !tg.FromAnnotations || !tg.RawQuery {
			t.Errorf("%s: target needs fromAnnotations and rawQuery (%v, %v)", name, tg.FromAnnotations, tg.RawQuery)
		}
		if !strings.Contains(tg.Query, "$timeFilter") {
			t.Errorf("%s: does not use $timeFilter: %s", name, tg.Query)
		}
		if !strings.Contains(tg.Query, `"server" =~ /^$server$/`) {
			t.Errorf(`%s: does not follow the server picker ("server" =~ /^$server$/): %s`, name, tg.Query)
		}
		for v := range vars {
			if strings.Contains(tg.Query, "$"+v) && !strings.Contains(tg.Query, "/^$"+v+"$/") {
				t.Errorf("%s: uses $%s outside =~ /^$%s$/", name, v, v)
			}
		}
		measurement, cols, err := selectedColumns(tg.Query)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if tg.TextColumn == "" || tg.TagsColumn == "" {
			t.Errorf("%s: set textColumn and tagsColumn (Grafana 11 makes every column a tag without tagsColumn)", name)
		}
		if strings.Contains(tg.TagsColumn, " ") || slices.Contains(tagColumns(tg), "") {
			t.Errorf("%s: tagsColumn %q: comma-separated names without spaces", name, tg.TagsColumn)
		}
		for _, c := range append([]string{tg.TextColumn, tg.TitleColumn, tg.TimeEndColumn}, tagColumns(tg)...) {
			if c != "" && !slices.Contains(cols, c) {
				t.Errorf("%s: maps column %q, which the query does not select (%v)", name, c, cols)
			}
		}
		if v10, v11 := rolesV10(cols, tg), rolesV11(measurement, cols, tg); !slices.Equal(v10, v11) {
			t.Errorf("%s: Grafana 10 and 11 read the columns %v differently: %v and %v (roles: 2 title, 3 tag, 4 text)", name, cols, v10, v11)
		}
	}
	if !builtIn {
		t.Errorf("%s: Grafana's built-in annotation (alerts, manual notes) is missing", d.path)
	}
}

// TestActionAnnotations checks that the dashboards where operators act on
// queues show the relay's actions and its refusals, and pins the column
// mapping the checks rely on.
func TestActionAnnotations(t *testing.T) {
	a := loadAssets(t)
	for _, uid := range actionDashboards {
		i := slices.IndexFunc(a.dashboards, func(d dashboard) bool { return d.UID == uid })
		if i < 0 {
			t.Errorf("dashboard %s is missing", uid)
			continue
		}
		var actions, refusals, changes bool
		for _, an := range a.dashboards[i].queryAnnotations() {
			if an.Target == nil || !readsEvents(an.Target.Query) {
				continue
			}
			q := an.Target.Query
			actions = actions || strings.Contains(q, `"result" =~ /^(sent|dry_run)$/`)
			refusals = refusals || strings.Contains(q, `"result" !~ /^(sent|dry_run)$/`)
			changes = changes || strings.Contains(q, `"kind" = 'config_change'`)
		}
		if !actions || !refusals {
			t.Errorf("%s: needs a pmta_event layer for actions (sent, dry_run) and one for the rest (refused, failed, held): %v, %v", uid, actions, refusals)
		}
		// A change of PowerMTA's configuration explains a step in the
		// deferrals, and the change-impact table is keyed by its time.
		if !changes {
			t.Errorf("%s: needs the pmta_event layer of PowerMTA's configuration changes (kind config_change)", uid)
		}
	}

	cols := []string{"time", "message", "token", "result"}
	for _, tc := range []struct {
		tg       annotationTarget
		v10, v11 []int
	}{
		{annotationTarget{TextColumn: "message", TagsColumn: "token,result"},
			[]int{roleTime, roleText, roleTag, roleTag}, []int{roleTime, roleText, roleTag, roleTag}},
		// No tagsColumn: every column a tag in Grafana 11.
		{annotationTarget{TextColumn: "message"},
			[]int{roleTime, roleText, roleTitle, roleNone}, []int{roleTime, roleTag, roleTag, roleTag}},
		// Grafana 11 compares titleColumn with the frame's name: no match.
		{annotationTarget{TextColumn: "message", TagsColumn: "kind", TitleColumn: "result"},
			[]int{roleTime, roleText, roleTitle, roleTitle}, []int{roleTime, roleText, roleTitle, roleNone}},
		// "sage" is a substring of pmta_event.message.
		{annotationTarget{TextColumn: "token", TagsColumn: "sage,result"},
			[]int{roleTime, roleTitle, roleText, roleTag}, []int{roleTime, roleTag, roleText, roleTag}},
	} {
		if got := rolesV10(cols, tc.tg); !slices.Equal(got, tc.v10) {
			t.Errorf("rolesV10 %+v = %v, want %v", tc.tg, got, tc.v10)
		}
		if got := rolesV11("pmta_event", cols, tc.tg); !slices.Equal(got, tc.v11) {
			t.Errorf("rolesV11 %+v = %v, want %v", tc.tg, got, tc.v11)
		}
	}
}

// annoEvent is what Grafana shows for one row: a text and tags.
type annoEvent struct {
	time int64 // ns
	text string
	tags []string
}

func (e annoEvent) String() string { return fmt.Sprintf("%q %q", e.text, e.tags) }

// annotationEvents turns the result of an annotation query into events as
// Grafana does. A null in a selected column is an error: Grafana 11 drops
// that row.
func annotationEvents(series []influxtest.Series, tg annotationTarget) ([]annoEvent, error) {
	var out []annoEvent
	for _, s := range series {
		roles := rolesV10(s.Columns, tg)
		for _, row := range s.Values {
			var e annoEvent
			for i, v := range row {
				if v == nil {
					return nil, fmt.Errorf("column %s is null in a row (%v): Grafana 11 drops the row", s.Columns[i], row)
				}
				switch roles[i] {
				case roleTime:
					n, _ := v.(json.Number)
					e.time, _ = n.Int64()
				case roleTag:
					for _, t := range strings.Split(fmt.Sprint(v), ",") {
						if t != "" {
							e.tags = append(e.tags, t)
						}
					}
				case roleText:
					e.text = fmt.Sprint(v)
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// checkAnnotationLayers runs every annotation query of a dashboard with its
// variables set to All, as checkDashboard runs the panels: each must give
// events with a text and tags. The pmta_event layers together must show
// each of the relay's points once, as want says.
func checkAnnotationLayers(t *testing.T, srv *influxtest.Server, d dashboard, want []annoEvent) {
	vars, err := resolveVariables(srv, testDB, d, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", d.path, err)
	}
	var shown []annoEvent // by the pmta_event layers
	for _, a := range d.queryAnnotations() {
		name := fmt.Sprintf("%s annotation %q", d.path, a.Name)
		if a.Target == nil {
			t.Errorf("%s: no target", name)
			continue
		}
		q, err := interpolate(a.Target.Query, vars)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		series, err := srv.Query(testDB, q)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		events, err := annotationEvents(series, *a.Target)
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, q)
			continue
		}
		if len(events) == 0 {
			t.Errorf("%s: no events: %s", name, q)
		}
		for _, e := range events {
			if e.text == "" || len(e.tags) == 0 {
				t.Errorf("%s: event %s without text or tags", name, e)
			}
		}
		t.Logf("%s: %d events, e.g. %s", name, len(events), events[0])
		if readsEvents(a.Target.Query) && !strings.Contains(a.Target.Query, "config_change") {
			shown = append(shown, events...) // the relay's: the configuration layer is checked non-empty above
		}
	}
	if !slices.Contains(actionDashboards, d.UID) {
		return
	}
	key := func(e annoEvent) string {
		return e.text + "\x00" + strings.Join(slices.Sorted(slices.Values(e.tags)), "\x00")
	}
	count := map[string]int{}
	for _, e := range shown {
		count[key(e)]++
	}
	for _, w := range want {
		count[key(w)]--
	}
	for _, w := range want {
		if count[key(w)] < 0 {
			t.Errorf("%s: the relay's %s is not shown", d.path, w)
		}
	}
	for _, e := range shown {
		if count[key(e)] > 0 {
			t.Errorf("%s: %s shown more often than the relay wrote it (or never written)", d.path, e)
		}
	}
}
