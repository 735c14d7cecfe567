package deploytest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// What the Prometheus rules read, against what an agent serves: promtool's
// unit tests feed the rules series of their own making, so a metric renamed
// in agent/selfmon/names.go, a label dropped or a record type spelled
// otherwise would leave them green and the alerts silent for good. The
// expressions are read with regular expressions, not PromQL's parser (a
// dependency of the whole Prometheus module): enough for the forms the rules
// use, selectors, `by (…)` and range functions over counters.

var (
	// A string in an expression, taken out before looking for names.
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// An agent metric: pmta_…, not part of a recorded name (level:metric:op)
	// nor of a configuration key (listen.pmta_metrics) in an annotation.
	agentMetric = regexp.MustCompile(`(?:^|[^.:\w])(pmta_[a-z0-9_]*[a-z0-9])\b`)
	// A name recorded by a rule.
	recordedName = regexp.MustCompile(`[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+`)
	// A selector with matchers, and one matcher.
	selectorRe = regexp.MustCompile(`\b(pmta_[a-z0-9_]+|up)\s*\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	// Labels an aggregation keeps, and a range function over a counter.
	byRe      = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	counterFn = regexp.MustCompile(`\b(?:increase|rate|irate|resets)\(\s*(pmta_[a-z0-9_]+)`)
	// A plain alternation of literal values: d|b|t.
	literals = regexp.MustCompile(`^[a-zA-Z0-9_.-]+(\|[a-zA-Z0-9_.-]+)*$`)
)

// targetLabels are added by the scrape, not served by the agent.
var targetLabels = []string{"job", "instance"}

// TestPrometheusRulesReadServedMetrics runs `pmta-agent demo` (the simulator,
// the accounting files and listen.pmta_metrics on) and scrapes its /metrics
// until everything the rules read is there: every pmta_ metric of an
// expression or an annotation, every label a selector matches or an
// aggregation keeps, every value a selector asks for (record types d, b and
// t, the sink components), counters where the rules take increase(); and
// up's job is the job of scrape.yml.
func TestPrometheusRulesReadServedMetrics(t *testing.T) {
	a := loadAssets(t)
	rules := promRules(t, a)
	jobs := scrapeJobs(t, a)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	for _, r := range rules {
		for _, n := range recordedName.FindAllString(promString.ReplaceAllString(r.Expr, `""`), -1) {
			if !recorded[n] {
				t.Errorf("%s reads %s, which no rule of %s records", r.name(), n, promRulesPath)
			}
		}
		for _, sel := range selectorRe.FindAllStringSubmatch(r.Expr, -1) {
			if sel[1] != "up" {
				continue
			}
			for _, m := range matcherRe.FindAllStringSubmatch(sel[2], -1) {
				if m[1] == "job" && (m[2] != "=" || !slices.Contains(jobs, m[3])) {
					t.Errorf("%s selects up{job%s%q}; %s names the job %v", r.name(), m[2], m[3], promScrapePath, jobs)
				}
			}
		}
	}

	bin := buildAgent(t, moduleRoot(t), t.TempDir())
	addr := freeAddr(t)
	demo := startDemo(t, bin, addr)
	var problems []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		demo.alive(t)
		problems = servedProblems(rules, scrapeFamilies(addr))
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			demo.stop(t)
			t.Fatalf("after 90 s the demo agent's /metrics still lacks what the rules read:\n  %s\nits log:\n%s",
				strings.Join(problems, "\n  "), demo.logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// servedProblems lists what the rules read and /metrics does not serve.
func servedProblems(rules []promRule, fams map[string]*dto.MetricFamily) []string {
	if fams == nil {
		return []string{"/metrics not served yet"}
	}
	var out []string
	missing := func(r promRule, name string) bool {
		if fams[name] == nil {
			out = append(out, fmt.Sprintf("%s: %s not on /metrics", r.name(), name))
			return true
		}
		return false
	}
	for _, r := range rules {
		expr := promString.ReplaceAllString(r.Expr, `""`)
		var families []string
		for _, m := range agentMetric.FindAllStringSubmatch(expr, -1) {
			if !missing(r, m[1]) && !slices.Contains(families, m[1]) {
				families = append(families, m[1])
			}
		}
		for _, text := range r.Annotations {
			for _, m := range agentMetric.FindAllStringSubmatch(text, -1) {
				missing(r, m[1])
			}
		}
		for _, m := range counterFn.FindAllStringSubmatch(expr, -1) {
			if f := fams[m[1]]; f != nil && f.GetType() != dto.MetricType_COUNTER {
				out = append(out, fmt.Sprintf("%s: increase() of %s, a %s", r.name(), m[1], f.GetType()))
			}
		}
		for _, sel := range selectorRe.FindAllStringSubmatch(r.Expr, -1) {
			f := fams[sel[1]]
			if f == nil {
				continue
			}
			for _, m := range matcherRe.FindAllStringSubmatch(sel[2], -1) {
				if p := matcherProblem(f, m[1], m[2], m[3]); p != "" {
					out = append(out, fmt.Sprintf("%s: %s{%s%s%q}: %s", r.name(), sel[1], m[1], m[2], m[3], p))
				}
			}
		}
		for _, by := range byRe.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(by[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || slices.Contains(targetLabels, l) {
					continue
				}
				for _, name := range families {
					if len(labelValues(fams[name], l)) == 0 {
						out = append(out, fmt.Sprintf("%s: by (%s): no series of %s has the label %s", r.name(), by[1], name, l))
					}
				}
			}
		}
	}
	return out
}

// matcherProblem says what a matcher finds missing in a family: its label,
// or, for = and =~ on a list of literals, a value it asks for (each of a
// list); for any other regular expression, a value it matches.
func matcherProblem(f *dto.MetricFamily, label, op, value string) string {
	if slices.Contains(targetLabels, label) {
		return ""
	}
	values := labelValues(f, label)
	if len(values) == 0 {
		return "no series has the label " + label
	}
	switch {
	case op == "=" && value != "":
		if !slices.Contains(values, value) {
			return fmt.Sprintf("no series has %s=%q (values: %v)", label, value, values)
		}
	case op == "=~" && literals.MatchString(value):
		for _, v := range strings.Split(value, "|") {
			if !slices.Contains(values, v) {
				return fmt.Sprintf("no series has %s=%q (values: %v)", label, v, values)
			}
		}
	case op == "=~":
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return err.Error()
		}
		if !slices.ContainsFunc(values, re.MatchString) {
			return fmt.Sprintf("no value of %s matches (values: %v)", label, values)
		}
	}
	return ""
}

// labelValues returns the values a label has in the series of a family.
func labelValues(f *dto.MetricFamily, label string) []string {
	var out []string
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && !slices.Contains(out, lp.GetValue()) {
				out = append(out, lp.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

// scrapeJobs returns the job names of scrape.yml.
func scrapeJobs(t *testing.T, a *assets) []string {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `json:"job_name"`
		} `json:"scrape_configs"`
	}
	if err := viaJSON(a.yamlFile(t, promScrapePath), &cfg); err != nil {
		t.Fatalf("%s: %v", promScrapePath, err)
	}
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	return jobs
}

// startDemo runs `pmta-agent demo` with its listener at addr; its line
// protocol goes nowhere, its log into logs.
func startDemo(t *testing.T, bin, addr string) *agentProc {
	t.Helper()
	p := &agentProc{name: "demo", logs: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "demo", "-listen", addr, "-interval", "1s", "-duration", "5m")
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s demo: %v", bin, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// scrapeFamilies reads and parses /metrics at addr; nil while it is not
// served or cannot be read.
func scrapeFamilies(addr string) map[string]*dto.MetricFamily {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	return fams
}
