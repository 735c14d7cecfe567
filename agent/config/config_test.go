package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	token := writeFile(t, "token", "s3cret-token\n")
	path := writeFile(t, "agent.yaml", `
server: mta01
tags: {dc: fra1}
api:
  url: https://${PMTA_HOST}:8080
  interval: 30s
  api_key: "${PMTA_KEY}"
pipeline:
  isp_map:
    example-isp.net: example
    "bigmail.*": bigmail
sinks:
  influx:
    enabled: true
    token_file: `+token+`
    bucket: pmta/autogen
`)
	env := []string{
		"PMTA_HOST=mta01.example", "PMTA_KEY=k$ey",
		"PMTA_AGENT_API__TIMEOUT=5s", "PMTA_AGENT_SINKS__INFLUX__BATCH_SIZE=100",
		"PMTA_AGENT_ACCT__GLOBS=/a/*.csv,/b/*.csv", "PMTA_AGENT_TAGS__ROLE=edge", "OTHER=1",
	}
	cfg, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server", cfg.Server, "mta01"},
		{"api.url", cfg.API.URL, "https://mta01.example:8080"},
		{"api.api_key", cfg.API.APIKey, "k$ey"},
		{"api.interval", cfg.API.Interval, 30 * time.Second},
		{"api.timeout (env)", cfg.API.Timeout, 5 * time.Second},
		{"api.dialect (default)", cfg.API.Dialect, "pmta"},
		{"influx token (file)", cfg.Sinks.Influx.Token, "s3cret-token"},
		{"influx batch_size (env)", cfg.Sinks.Influx.BatchSize, 100},
		{"acct globs (env)", strings.Join(cfg.Acct.Globs, " "), "/a/*.csv /b/*.csv"},
		{"tags", cfg.Tags["dc"] + "," + cfg.Tags["role"], "fra1,edge"},
		{"isp_map keeps dotted keys", cfg.Pipeline.ISPMap["example-isp.net"], "example"},
		{"isp_map wildcard", cfg.Pipeline.ISPMap["bigmail.*"], "bigmail"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "agent.yaml", `
api:
  urll: http://x
  interval: soon
  api_key: ${NOT_SET_ANYWHERE}
sinks:
  influx:
    token: abc
    token_file: /nonexistent/token
`)
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"api.urll: unknown key",
		"api.interval:",
		"api.api_key: ${NOT_SET_ANYWHERE} is not set",
		"sinks.influx.token and sinks.influx.token_file are both set",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "abc") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cfg := Default()
	cfg.Server = "s"
	cfg.API.URL = "ftp://x"
	cfg.API.Dialect = "snmp"
	cfg.API.Timeout = 2 * time.Minute
	cfg.Acct.Enabled = true
	cfg.Acct.Interval = 7 * time.Second
	cfg.Acct.Globs = []string{"[bad"}
	cfg.Tags = map[string]string{"domain": "x"}
	cfg.Sinks.Influx.Enabled = true
	cfg.Sinks.Influx.URL = "http://influx.example:8086"
	cfg.Sinks.Influx.Token = "tok"
	cfg.Sinks.Influx.Bucket = ""
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`api.url: "ftp://x" must start with http:// or https://`,
		`api.dialect: is "snmp", want one of pmta, seed`,
		"api.timeout: (2m0s) must not exceed api.interval (1m0s)",
		"acct.interval: (7s) must divide an hour evenly",
		"acct.globs[0]:",
		"tags.domain: is set by the agent itself",
		"sinks.influx.bucket: must be set",
		"sinks.influx.token: would be sent in clear text",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "tok\n") || strings.Contains(err.Error(), "=tok") {
		t.Errorf("error leaks the token: %v", err)
	}

	ok := Default()
	ok.Server = "s"
	ok.Sinks.Stdout.Enabled = true
	if err := ok.Validate(); err != nil {
		t.Errorf("default config with stdout: %v", err)
	}
}

// Credentials in URLs never reach an error; clear-text checks cannot be
// dodged by spelling.
func TestValidateSecretsAndClearText(t *testing.T) {
	cfg := Default()
	cfg.Server = "s"
	cfg.API.URL = "https://admin:Sup3rS3cret%zz@mta.example:8080"
	cfg.API.APIKey = "k"
	cfg.Sinks.Influx.Enabled = true
	cfg.Sinks.Influx.URL = "htps://writer:Tok3nP4ss@influx.example:8086"
	cfg.Sinks.OTLP.Enabled = true
	cfg.Sinks.OTLP.Protocol = "http"
	cfg.Sinks.OTLP.Endpoint = "http://collector.example.net:4318"
	cfg.Sinks.OTLP.Headers = map[string]string{"authorization": "Bearer abc"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, secret := range []string{"Sup3rS3cret", "Tok3nP4ss", "Bearer abc"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q:\n%v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), "sinks.otlp.headers: would be sent in clear text") {
		t.Errorf("no clear-text warning for OTLP/http headers:\n%v", err)
	}

	for _, u := range []string{"HTTP://influx.example:8086", "http://127.attacker.example:8086"} {
		c := Default()
		c.Server = "s"
		c.Sinks.Influx.Enabled = true
		c.Sinks.Influx.URL = u
		c.Sinks.Influx.Token = "t"
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sinks.influx.token: would be sent in clear text") {
			t.Errorf("%s with a token: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8086", "http://localhost:8086", "http://[::1]:8086"} {
		c := Default()
		c.Server = "s"
		c.Sinks.Influx.Enabled = true
		c.Sinks.Influx.URL = u
		c.Sinks.Influx.Token = "t"
		if err := c.Validate(); err != nil {
			t.Errorf("%s (loopback) with a token: %v", u, err)
		}
	}
}

func TestValidateAcctInterval(t *testing.T) {
	c := Default()
	c.Server = "s"
	c.Sinks.Stdout.Enabled = true
	c.Acct.Enabled = true
	c.Acct.Interval = 1500 * time.Millisecond
	c.Acct.Grace = 0
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "acct.interval: (1.5s) must be a whole number of seconds") ||
		!strings.Contains(err.Error(), "acct.grace: must be a positive duration") {
		t.Errorf("got %v", err)
	}
}

func TestLoadUnreadableFileIsOneProblem(t *testing.T) {
	_, err := Load("/nonexistent/agent.yaml", nil)
	if !errors.Is(err, ErrRead) || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("got %v", err)
	}
}

func TestByteSizeFromEnvironment(t *testing.T) {
	cfg, err := Load("", []string{"PMTA_AGENT_SINKS__INFLUX__BUFFER__MAX_BYTES=256MiB"})
	if err != nil || cfg.Sinks.Influx.Buffer.MaxBytes != 256<<20 {
		t.Errorf("env max_bytes: %v, %v", cfg.Sinks.Influx.Buffer.MaxBytes, err)
	}
}
