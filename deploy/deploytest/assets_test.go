package deploytest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kyaml "github.com/knadh/koanf/parsers/yaml"
)

// This file finds the Grafana assets in deploy/ by walking it and decodes
// them; the tests never carry their own copy of a query.

// dsRef is a data source reference of a panel, target or variable.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// evaluator is a threshold expression's condition.
type evaluator struct {
	Type   string    `json:"type"`
	Params []float64 `json:"params"`
}

// target is one query of a panel, or the model of an alert rule's query; it
// holds both InfluxQL queries and server-side expressions.
type target struct {
	RefID        string `json:"refId"`
	Datasource   *dsRef `json:"datasource"`
	Query        string `json:"query"`
	RawQuery     bool   `json:"rawQuery"`
	ResultFormat string `json:"resultFormat"`
	Alias        string `json:"alias"`
	Hide         bool   `json:"hide"`
	// Expressions (datasource __expr__).
	Type       string `json:"type"`
	Expression string `json:"expression"`
	Reducer    string `json:"reducer"`
	Settings   struct {
		Mode string `json:"mode"`
	} `json:"settings"`
	Conditions []struct {
		Evaluator evaluator `json:"evaluator"`
	} `json:"conditions"`
}

// isExpr reports whether t is a server-side expression rather than a query.
func (t target) isExpr() bool {
	return t.Datasource != nil && (t.Datasource.Type == "__expr__" || t.Datasource.UID == "__expr__")
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Interval    string      `json:"interval"`
	Datasource  *dsRef      `json:"datasource"`
	Targets     []target    `json:"targets"`
	Panels      []panel     `json:"panels"` // collapsed rows hold their panels here
	FieldConfig fieldConfig `json:"fieldConfig"`
}

// fieldConfig is the part of a panel's field configuration the tests read:
// value mappings, for all fields and per field.
type fieldConfig struct {
	Defaults struct {
		Mappings []valueMapping `json:"mappings"`
	} `json:"defaults"`
	Overrides []struct {
		Matcher struct {
			ID      string `json:"id"`
			Options string `json:"options"`
		} `json:"matcher"`
		Properties []struct {
			ID    string          `json:"id"`
			Value json.RawMessage `json:"value"`
		} `json:"properties"`
	} `json:"overrides"`
}

// valueMapping is one of Grafana's value mappings (type "value": exact
// values to texts).
type valueMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text string `json:"text"`
	} `json:"options"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *dsRef          `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
}

// queryText is a query variable's InfluxQL, stored either as a string or as
// {"query": "..."} depending on the Grafana version that saved it.
func (v variable) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor {query}: %w", v.Name, err)
	}
	return o.Query, nil
}

type dashboard struct {
	path          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type alertQuery struct {
	RefID             string `json:"refId"`
	DatasourceUID     string `json:"datasourceUid"`
	RelativeTimeRange *struct {
		From int64 `json:"from"`
		To   int64 `json:"to"`
	} `json:"relativeTimeRange"`
	Model target `json:"model"`
}

type alertRule struct {
	UID          string            `json:"uid"`
	Title        string            `json:"title"`
	Condition    string            `json:"condition"`
	Data         []alertQuery      `json:"data"`
	NoDataState  string            `json:"noDataState"`
	ExecErrState string            `json:"execErrState"`
	For          string            `json:"for"`
	Labels       map[string]string `json:"labels"`
}

type alertFile struct {
	path       string
	APIVersion int `json:"apiVersion"`
	Groups     []struct {
		OrgID    int         `json:"orgId"`
		Name     string      `json:"name"`
		Folder   string      `json:"folder"`
		Interval string      `json:"interval"`
		Rules    []alertRule `json:"rules"`
	} `json:"groups"`
}

func (f alertFile) rules() []alertRule {
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// assets is everything found under deploy/.
type assets struct {
	dir         string
	dashboards  []dashboard
	alerts      []alertFile
	datasources []map[string]any // entries of datasource provisioning files
	yamlFiles   map[string]map[string]any
}

// loadAssets walks deploy/ (leaving out this package) and sorts what it finds
// by content: JSON with panels is a dashboard, YAML with groups of rules is an
// alert rule file (Grafana's; Prometheus's rule files, whose rules are
// `alert` or `record`, stay in yamlFiles: prometheus_rules_test.go), YAML
// with datasources provisions data sources.
func loadAssets(t testing.TB) *assets {
	t.Helper()
	dir := filepath.Join(moduleRoot(t), "deploy")
	a := &assets{dir: dir, yamlFiles: map[string]map[string]any{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "deploytest" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch filepath.Ext(path) {
		case ".json":
			var db dashboard
			if err := json.Unmarshal(b, &db); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if len(db.Panels) == 0 {
				return fmt.Errorf("%s: a JSON file without panels; this test knows only dashboards", rel)
			}
			db.path = rel
			a.dashboards = append(a.dashboards, db)
		case ".yaml", ".yml":
			m, err := kyaml.Parser().Unmarshal(b)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			a.yamlFiles[rel] = m
			if _, ok := m["groups"]; ok && !isPrometheusRules(m) {
				var af alertFile
				if err := viaJSON(m, &af); err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
				af.path = rel
				a.alerts = append(a.alerts, af)
			}
			if ds, ok := m["datasources"].([]any); ok {
				for _, d := range ds {
					if dm, ok := d.(map[string]any); ok {
						a.datasources = append(a.datasources, dm)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if len(a.dashboards) == 0 || len(a.alerts) == 0 {
		t.Fatalf("deploy/ holds %d dashboards and %d alert rule files; want some of each", len(a.dashboards), len(a.alerts))
	}
	return a
}

// viaJSON converts a decoded YAML document into a struct through JSON, so
// that the structs above serve both formats.
func viaJSON(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// yamlFile returns the decoded YAML file at rel (relative to deploy/).
func (a *assets) yamlFile(t testing.TB, rel string) map[string]any {
	t.Helper()
	m, ok := a.yamlFiles[filepath.FromSlash(rel)]
	if !ok {
		names := make([]string, 0, len(a.yamlFiles))
		for k := range a.yamlFiles {
			names = append(names, k)
		}
		slices.Sort(names)
		t.Fatalf("deploy/%s not found; YAML files: %s", rel, strings.Join(names, ", "))
	}
	return m
}
