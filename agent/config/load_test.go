package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// check-config shows every problem of a file at once: each wrongly typed
// value with its key path, next to unknown keys and unset variables, in key
// order, and the well-typed rest of the file still loads.
func TestLoadReportsEveryWronglyTypedValue(t *testing.T) {
	path := writeFile(t, "agent.yaml", `
api:
  url: http://mta01.example:8080
  interval: banana
  timeout: 3x
  max_items: many
  urll: http://x
acct:
  top_diag: lots
  enabled: maybe
  globs: [/a/*.csv, {b: c}]
sinks:
  influx:
    batch_size: big
    buffer: {max_bytes: lots, sync_every: 1s}
  otlp:
    headers: {authorization: [Bearer, s3cret]}
pipeline:
  isp_map:
    example.net: {provider: example}
self_interval: {every: 5s}
memory_limit: ${NOT_SET_ANYWHERE}
`)
	cfg, err := Load(path, []string{"PMTA_AGENT_LISTEN__ENABLED=perhaps"})
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		`acct.enabled: cannot parse "maybe" as true or false`,
		`acct.globs[1]: cannot use a map as a string`,
		`acct.top_diag: cannot parse "lots" as a whole number`,
		`api.interval: cannot parse "banana" as a duration`,
		`api.max_items: cannot parse "many" as a whole number`,
		`api.timeout: cannot parse "3x" as a duration`,
		`api.urll: unknown key`,
		`listen.enabled: cannot parse "perhaps" as true or false`,
		`memory_limit: ${NOT_SET_ANYWHERE} is not set in the environment`,
		`pipeline.isp_map.example.net: cannot use a map as a string`,
		`self_interval: cannot use a map as a duration`,
		`sinks.influx.batch_size: cannot parse "big" as a whole number`,
		`sinks.influx.buffer.max_bytes: "lots" is not a size such as 1GiB, 512MiB or 1073741824`,
		`sinks.otlp.headers.authorization: cannot use a list as a string`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows a header value:\n%v", err)
	}

	// The values without a problem are loaded; those with one keep their
	// defaults.
	def := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"api.url", cfg.API.URL, "http://mta01.example:8080"},
		{"sinks.influx.buffer.sync_every", cfg.Sinks.Influx.Buffer.SyncEvery, time.Second},
		{"api.interval", cfg.API.Interval, def.API.Interval},
		{"sinks.influx.batch_size", cfg.Sinks.Influx.BatchSize, def.Sinks.Influx.BatchSize},
		{"memory_limit", cfg.MemoryLimit, def.MemoryLimit},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// The same file gives the same error, word for word, every time.
func TestLoadProblemsAreInStableOrder(t *testing.T) {
	path := writeFile(t, "agent.yaml", `
api: {interval: banana, timeout: 3x, max_items: many, a: 1, b: 2, c: 3}
acct: {top_diag: lots, enabled: maybe, x: "${UNSET_1}", y: "${UNSET_2}"}
sinks: {influx: {batch_size: big, url: "${UNSET_3}", org: "${UNSET_4}"}}
`)
	_, first := Load(path, nil)
	if first == nil {
		t.Fatal("no error")
	}
	for range 20 {
		if _, err := Load(path, nil); err == nil || err.Error() != first.Error() {
			t.Fatalf("order changed:\n%v\n---\n%v", first, err)
		}
	}
}

// A section that is not a map, and an unknown section with several keys, are
// one problem each.
func TestLoadSectionProblemsOnce(t *testing.T) {
	path := writeFile(t, "agent.yaml", `
api: banana
sinkz: {influx: {url: http://x, token: t}}
`)
	_, err := Load(path, nil)
	want := "api: cannot parse \"banana\" as a map of settings\nsinkz: unknown key"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
