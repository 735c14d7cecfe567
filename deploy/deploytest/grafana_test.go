package deploytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// This file does what Grafana does before and after it sends a query:
// substitutes macros and template variables, runs the InfluxQL, and
// evaluates server-side expressions over the results.

// dashboardRange is the time range the dashboards are queried with.
const dashboardRange = time.Hour

// timeFilter renders $timeFilter as Grafana's InfluxDB data source does: one
// absolute range, the same for every query of a panel or rule, so that the
// results of two queries line up on their timestamps.
func timeFilter(from, to time.Time) string {
	return fmt.Sprintf("time >= %dms and time <= %dms", from.UnixMilli(), to.UnixMilli())
}

// defaultInterval stands in for $__interval where a panel sets no minimum;
// it matches the data source's timeInterval (the accounting interval).
const defaultInterval = 10 * time.Second

// refPattern matches $name and ${name}. InfluxQL regex anchors such as the
// "$/" in /^$server$/ do not match it.
var refPattern = regexp.MustCompile(`\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)`)

// interpolate replaces every $name / ${name} in q from vars; a reference
// without a value is an error, so a typo in a dashboard cannot pass.
func interpolate(q string, vars map[string]string) (string, error) {
	var missing []string
	out := refPattern.ReplaceAllStringFunc(q, func(m string) string {
		name := strings.Trim(m[1:], "{}")
		v, ok := vars[name]
		if !ok {
			missing = append(missing, m)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variable or macro %s in %q", strings.Join(missing, ", "), q)
	}
	return out, nil
}

// regexValue formats variable values the way Grafana does for a multi-value
// (or All) variable used inside an InfluxQL regex: (a|b|c), each escaped.
func regexValue(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = regexp.QuoteMeta(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "(" + strings.Join(q, "|") + ")"
}

// intervalVars returns $__interval and $__interval_ms for a panel.
func intervalVars(vars map[string]string, panelInterval string) (map[string]string, error) {
	iv := defaultInterval
	if panelInterval != "" {
		d, err := time.ParseDuration(panelInterval)
		if err != nil {
			return nil, fmt.Errorf("panel interval %q: %w", panelInterval, err)
		}
		iv = max(d, defaultInterval)
	}
	out := make(map[string]string, len(vars)+2)
	for k, v := range vars {
		out[k] = v
	}
	out["__interval"] = strconv.FormatInt(int64(iv/time.Second), 10) + "s"
	out["__interval_ms"] = strconv.FormatInt(iv.Milliseconds(), 10)
	return out, nil
}

// resolveVariables runs a dashboard's query variables in order (later ones
// may use earlier ones) and returns the substitution of each, with every
// value selected, as "All" does. A variable whose query finds nothing is an
// error: its dashboard would show an empty picker.
func resolveVariables(srv *influxtest.Server, db string, d dashboard, now time.Time) (map[string]string, error) {
	vars := map[string]string{"timeFilter": timeFilter(now.Add(-dashboardRange), now)}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			continue
		case "query":
		default:
			return nil, fmt.Errorf("variable %s: type %q is not one this test knows", v.Name, v.Type)
		}
		raw, err := v.queryText()
		if err != nil {
			return nil, err
		}
		q, err := interpolate(raw, vars)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		series, err := srv.Query(db, q)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		var values []string
		for _, s := range series {
			col := slicesIndex(s.Columns, "value")
			for _, row := range s.Values {
				if col >= 0 && col < len(row) {
					values = append(values, fmt.Sprint(row[col]))
				}
			}
		}
		if len(values) == 0 {
			return nil, fmt.Errorf("variable %s: %q returned no values", v.Name, q)
		}
		if !v.Multi && !v.IncludeAll {
			values = values[:1]
		}
		vars[v.Name] = regexValue(values)
	}
	return vars, nil
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// aliasTags are the $tag_name references of an alias.
var aliasTags = regexp.MustCompile(`\$tag_([A-Za-z0-9_]+)`)

// runTarget executes one InfluxQL target and checks that it returns data
// and that its alias names only tags the series have.
func runTarget(srv *influxtest.Server, db string, tg target, vars map[string]string) ([]item, string, error) {
	if !tg.RawQuery || strings.TrimSpace(tg.Query) == "" {
		return nil, "", fmt.Errorf("target %s is not a raw InfluxQL query (rawQuery=%v): this test cannot see what it asks", tg.RefID, tg.RawQuery)
	}
	q, err := interpolate(tg.Query, vars)
	if err != nil {
		return nil, "", fmt.Errorf("target %s: %w", tg.RefID, err)
	}
	series, err := srv.Query(db, q)
	if err != nil {
		return nil, q, fmt.Errorf("target %s: %w", tg.RefID, err)
	}
	if len(series) == 0 {
		return nil, q, fmt.Errorf("target %s returned no series: %s", tg.RefID, q)
	}
	if tg.ResultFormat == "table" {
		for _, s := range series {
			if len(s.Values) > 0 {
				return nil, q, nil
			}
		}
		return nil, q, fmt.Errorf("target %s returned no rows: %s", tg.RefID, q)
	}
	items, err := seriesItems(series)
	if err != nil {
		return nil, q, fmt.Errorf("target %s: %w", tg.RefID, err)
	}
	if !hasData(items) {
		return nil, q, fmt.Errorf("target %s returned only nulls: %s", tg.RefID, q)
	}
	for _, m := range aliasTags.FindAllStringSubmatch(tg.Alias, -1) {
		for _, s := range series {
			if _, ok := s.Tags[m[1]]; !ok {
				return nil, q, fmt.Errorf("target %s: alias %q uses tag %s, which its series do not have (tags %v)", tg.RefID, tg.Alias, m[1], s.Tags)
			}
		}
	}
	return items, q, nil
}

// evalExpr evaluates one server-side expression over earlier results.
func evalExpr(tg target, results map[string][]item) ([]item, error) {
	ref := strings.Trim(strings.TrimPrefix(strings.TrimSpace(tg.Expression), "$"), "{}")
	switch tg.Type {
	case "math":
		n, err := parseMath(tg.Expression)
		if err != nil {
			return nil, err
		}
		return n.eval(results)
	case "reduce":
		in, ok := results[ref]
		if !ok {
			return nil, fmt.Errorf("reduce %s: no result %q before it", tg.RefID, ref)
		}
		return reduce(in, tg.Reducer, tg.Settings.Mode)
	case "threshold":
		in, ok := results[ref]
		if !ok {
			return nil, fmt.Errorf("threshold %s: no result %q before it", tg.RefID, ref)
		}
		if len(tg.Conditions) == 0 {
			return nil, fmt.Errorf("threshold %s has no condition", tg.RefID)
		}
		ev := tg.Conditions[0].Evaluator
		return threshold(in, ev.Type, ev.Params)
	}
	return nil, fmt.Errorf("expression %s: type %q is not one this test knows", tg.RefID, tg.Type)
}

// ruleResult is one evaluation of an alert rule.
type ruleResult struct {
	results map[string][]item
	queries []string           // the InfluxQL sent
	firing  []string           // label sets where the condition holds
	values  map[string]float64 // the condition's input per label set
}

// evalRule evaluates an alert rule as Grafana's scheduler would now: each
// query over its relative time range, then the expressions in order.
func evalRule(srv *influxtest.Server, db string, r alertRule, now time.Time) (ruleResult, error) {
	res := ruleResult{results: map[string][]item{}, values: map[string]float64{}}
	var cond target
	for _, q := range r.Data {
		tg := q.Model
		if tg.RefID == "" {
			tg.RefID = q.RefID
		}
		if q.DatasourceUID == "__expr__" || tg.isExpr() {
			items, err := evalExpr(tg, res.results)
			if err != nil {
				return res, err
			}
			res.results[q.RefID] = items
			if q.RefID == r.Condition {
				cond = tg
			}
			continue
		}
		if q.RelativeTimeRange == nil {
			return res, fmt.Errorf("query %s has no relativeTimeRange", q.RefID)
		}
		rel := q.RelativeTimeRange
		vars := map[string]string{"timeFilter": timeFilter(now.Add(-time.Duration(rel.From)*time.Second), now.Add(-time.Duration(rel.To)*time.Second))}
		items, sent, err := runTarget(srv, db, tg, vars)
		res.queries = append(res.queries, sent)
		if err != nil {
			return res, err
		}
		res.results[q.RefID] = items
	}
	out, ok := res.results[r.Condition]
	if !ok {
		return res, fmt.Errorf("condition %q is not a refId of the rule", r.Condition)
	}
	input := res.results[strings.TrimPrefix(cond.Expression, "$")]
	for _, it := range input {
		if it.number {
			res.values[labelKey(it.labels)] = it.values[0]
		}
	}
	for _, it := range out {
		if !it.number {
			return res, fmt.Errorf("condition %s is a time series; reduce it first", r.Condition)
		}
		if it.values[0] != 0 {
			res.firing = append(res.firing, labelKey(it.labels))
		}
	}
	return res, nil
}

// describe renders a rule result for failure messages.
func (r ruleResult) describe() string {
	b, _ := json.MarshalIndent(r.values, "", "  ")
	return fmt.Sprintf("firing %v\ncondition input per label set: %s\nqueries:\n  %s", r.firing, b, strings.Join(r.queries, "\n  "))
}
