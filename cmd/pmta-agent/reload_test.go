package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// SIGHUP reloads the configuration of a running agent (systemctl reload):
// the new tags apply to the points made after it, a source turned on
// starts, the accounting tailer hands over to its successor with a new glob
// without counting a record twice or missing one, the log level changes,
// and what cannot change at run time (the listener) is said and kept. A
// file that does not load changes nothing, and the agent runs on. The JSON
// log has no duplicate keys and durations in seconds, and log_level: debug
// shows polls, files picked up, checkpoints and sink writes.
func TestSIGHUPReloads(t *testing.T) {
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logs, extra := filepath.Join(dir, "log"), filepath.Join(dir, "extra")
	s := sim.New(sim.Options{Seed: 5, Rate: -1})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A second directory, only in the configuration after the reload,
	// with records that are there before it.
	x, err := sim.New(sim.Options{Seed: 6, Rate: -1}).NewAcctWriter(sim.AcctOptions{Dir: extra, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Write(50, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	cfgPath := filepath.Join(dir, "agent.yaml")
	config := func(env, level, apiOn string, globs ...string) string {
		return fmt.Sprintf(`server: hup-mta
tags: {env: %s}
log_level: %s
log_format: json
state_dir: %s
self_interval: 1h
shutdown_timeout: 5s
listen: {enabled: false}
api: {enabled: %s, url: %q, interval: 1h}
acct: {enabled: true, start_at: beginning, poll_every: 100ms, interval: 1s, grace: 100ms, globs: [%s]}
sinks: {stdout: {enabled: true}}
`, env, level, filepath.Join(dir, "state"), apiOn, api.URL, strings.Join(globs, ", "))
	}
	writeTestFile(t, cfgPath, config("one", "info", "false", filepath.Join(logs, "*.csv")))

	outPath, logPath := filepath.Join(dir, "out.lp"), filepath.Join(dir, "agent.log")
	outf, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	readLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", readLog())
		}
	})
	// systemd's side of Type=notify: RELOADING=1, then READY=1, for each.
	notes := listenNotify(t, filepath.Join(dir, "notify.sock"))
	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"))
	cmd.Stdout, cmd.Stderr = outf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	t.Cleanup(func() {
		if running {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for !cond() {
			select {
			case err := <-exited:
				running = false
				t.Fatalf("the agent exited while waiting for %s: %v", what, err)
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	counts := func() map[string]int64 { return acctCountsByEnv(t, outPath) }
	total := func() int64 {
		var n int64
		for _, c := range counts() {
			n += c
		}
		return n
	}
	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the agent to start", func() bool { return strings.Contains(readLog(), `"msg":"pmta-agent starting"`) })

	if err := w.Write(300, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor("300 records before the reload", func() bool { return total() == 300 })
	if strings.Contains(readLog(), `"level":"DEBUG"`) {
		t.Error("debug lines at log_level info")
	}

	// The reload: new tags, the API on, a second glob, debug, and a
	// listener that cannot change while the agent runs.
	writeTestFile(t, cfgPath, strings.Replace(config("two", "debug", "true", filepath.Join(logs, "*.csv"), filepath.Join(extra, "*.csv")),
		"listen: {enabled: false}", "listen: {enabled: true, address: \"127.0.0.1:0\"}", 1))
	hup()
	waitFor("the reload", func() bool { return strings.Contains(readLog(), `"msg":"configuration reloaded"`) })
	log := readLog()
	for _, want := range []string{
		`"msg":"setting changed, but applies only after a restart","setting":"listen"`,
		`"changed":"pipeline,log_level,api,acct"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	if err := w.Write(200, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor("550 records after the reload", func() bool { return total() >= 550 })
	waitFor("the API's points", func() bool { return apiPoints(t, outPath, "two") > 0 })
	if got := counts(); got["one"] != 300 || got["two"] != 250 || len(got) != 2 {
		t.Errorf("records by env after the reload: %v, want one=300 two=250 (200 new, 50 in the new glob)", got)
	}

	// A file that does not load changes nothing.
	writeTestFile(t, cfgPath, "server: [unclosed\n")
	hup()
	waitFor("the refused reload", func() bool {
		return strings.Contains(readLog(), `"msg":"configuration not reloaded; the agent runs on as it was"`)
	})
	if err := w.Write(100, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor("650 records", func() bool { return total() >= 650 })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		running = false
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop within 30 s of SIGTERM")
	}
	if got := counts(); got["one"] != 300 || got["two"] != 350 {
		t.Errorf("records by env at the end: %v, want one=300 two=350", got)
	}

	var got string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		got = notes()
		if strings.HasSuffix(got, "STOPPING=1") {
			break
		}
	}
	if want := "READY=1 RELOADING=1 READY=1 RELOADING=1 READY=1 STOPPING=1"; got != want {
		t.Errorf("systemd notifications %q, want %q", got, want)
	}

	log = readLog()
	for _, want := range []string{
		`"msg":"api poll"`, `"msg":"accounting file picked up"`, `"msg":"accounting checkpoint written"`, `"msg":"sink write"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log_level debug: no %s line", want)
		}
	}
	checkJSONLog(t, log)
}

// checkJSONLog fails on a log line that is not one JSON object, or has a
// key twice, or a duration not in seconds (slog's default is nanoseconds).
func checkJSONLog(t *testing.T, log string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Errorf("not a JSON object: %s", line)
			continue
		}
		if err := noDuplicateKeys(dec); err != nil {
			t.Errorf("%v: %s", err, line)
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		if took, ok := m["took"].(float64); ok && took > 60 {
			t.Errorf("took=%v: a duration not in seconds: %s", took, line)
		}
	}
}

// noDuplicateKeys reads the rest of an object whose '{' dec has read.
func noDuplicateKeys(dec *json.Decoder) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		if err := skipValue(dec); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return noDuplicateKeys(dec)
	case json.Delim('['):
		for dec.More() {
			if err := skipValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// acctCountsByEnv sums the count field of the pmta_acct points in a line
// protocol file, by their env tag.
func acctCountsByEnv(t *testing.T, path string) map[string]int64 {
	out := map[string]int64{}
	eachPoint(t, path, func(m string, tags map[string]string, fields map[string]int64) {
		if m == "pmta_acct" {
			out[tags["env"]] += fields["count"]
		}
	})
	return out
}

// apiPoints counts the pmta_status points with the env tag env.
func apiPoints(t *testing.T, path, env string) int {
	n := 0
	eachPoint(t, path, func(m string, tags map[string]string, _ map[string]int64) {
		if m == "pmta_status" && tags["env"] == env {
			n++
		}
	})
	return n
}

// eachPoint decodes the complete lines of a line protocol file.
func eachPoint(t *testing.T, path string, f func(m string, tags map[string]string, fields map[string]int64)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eachPointIn(t, b, f)
}

// eachPointIn decodes the complete lines of line protocol in b and hands
// each point's integer fields to f.
func eachPointIn(t *testing.T, b []byte, f func(m string, tags map[string]string, fields map[string]int64)) {
	t.Helper()
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		return
	}
	for _, p := range decodeLines(t, b[:i+1]) {
		ints := map[string]int64{}
		for k, v := range p.fields {
			if n, ok := v.(int64); ok {
				ints[k] = n
			}
		}
		f(p.measurement, p.tags, ints)
	}
}
