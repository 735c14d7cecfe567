package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-acct-generate", "10"}, {"extra"}, {"-rate", "x"},
		{"-scenario", "ip-reputation,bogus"},
		{"-scenario", "ip-reputation@soon"},
		{"-scenario", "config-fix@2m"}, // no -config-out
		{"-acct-generate", "10", "-acct-out", "x.csv", "-config-out", "config"},
	} {
		_, err := parseFlags(args, io.Discard)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) || errors.As(err, new(usageError)) {
		t.Errorf("-h: %v", err)
	}
	var help bytes.Buffer
	parseFlags([]string{"-h"}, &help)
	for _, want := range []string{"-config-out", "-scenario", "ip-reputation, pool-throttle, config-fix, config-noop, clear"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	t.Setenv("PMTA_SIM_API_KEY", "fromenv")
	c, err := parseFlags(nil, io.Discard)
	if err != nil || c.apiKey != "fromenv" || c.listen != "127.0.0.1:8080" {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func TestScenarioList(t *testing.T) {
	got, err := sim.ParseSchedule(" ip-reputation , Pool-Throttle@0s,config-noop@4m, config-fix@2m,clear@1h30m")
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Schedule{{Name: "ip-reputation"}, {Name: "pool-throttle"}, {Name: "config-fix", At: 2 * time.Minute},
		{Name: "config-noop", At: 4 * time.Minute}, {Name: "clear", At: 90 * time.Minute}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := sim.ParseSchedule(""); got != nil || err != nil {
		t.Errorf("empty list: %v %v", got, err)
	}
	for list, msg := range map[string]string{
		"ip-reputation,,clear": `unknown scenario ""`,
		"ip-rep":               `unknown scenario "ip-rep" (want NAME or NAME@DURATION, NAME one of ip-reputation, pool-throttle, config-fix, config-noop, clear)`,
		"clear@2":              `"clear@2": want a duration after the start such as 90s or 2m, not "2"`,
		"clear@-1m":            `not "-1m"`,
		"clear@":               `not ""`,
	} {
		if _, err := sim.ParseSchedule(list); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %s", list, err, msg)
		}
	}
}

// TestServeScenarios runs the command with a config file and a schedule: the
// config says where the API and the files are, the first scenarios are in
// place before the first request, a later one rewrites the config.
func TestServeScenarios(t *testing.T) {
	dir := t.TempDir()
	configOut, acctDir := filepath.Join(dir, "etc", "config"), filepath.Join(dir, "acct")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-acct-dir", acctDir, "-acct-rate", "5000", "-acct-types", "d,b,t",
			"-config-out", configOut, "-scenario", "ip-reputation,pool-throttle,config-noop@300ms"}, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`listening on http://127\.0\.0\.1:(\d+)`)
	var port string
	for deadline := time.Now().Add(10 * time.Second); port == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("no listening line: %q", stdout.String())
	}
	for _, want := range []string{"name=ip-reputation", "name=pool-throttle"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("%s not applied before listening: %s", want, stderr.String())
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "name=config-noop") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	// Records with the scenarios on: pool-microsoft's IPs defer far more
	// than pool-gmail's.
	var ms, gm [2]int
	for deadline := time.Now().Add(10 * time.Second); ms[0] < 300 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ms, gm = poolAttempts(t, acctDir)
	}
	if ms[0] < 300 || gm[0] < 300 || float64(ms[1])/float64(ms[0]) < 0.2 || float64(gm[1])/float64(gm[0]) > 0.05 {
		t.Errorf("deferred/attempts: pool-microsoft %v, pool-gmail %v", ms, gm)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	if !strings.Contains(stderr.String(), `what="config-noop: <domain $yahoo> max-smtp-out 10 → 12`) {
		t.Errorf("config-noop not logged: %s", stderr.String())
	}
	// The file says where the API and the records are, and differs from
	// the one the start wrote (rendered again here: the test may have come
	// too late to read it) by config-noop's change only.
	after, err := pmtaconf.Load(configOut)
	if err != nil {
		t.Fatal(err)
	}
	d := pmtaconf.Derive(after, pmtaconf.Options{WebmonCert: filepath.Join(dir, "none.pem")})
	if d.API.URL != "http://127.0.0.1:"+port || len(d.Acct) != 1 || d.Acct[0].Path != filepath.Join(acctDir, "acct.csv") ||
		!slices.Equal(d.Acct[0].Records, []string{"d", "b", "t"}) || len(d.Warnings) > 0 {
		t.Errorf("derived %+v", d)
	}
	n, _ := strconv.Atoi(port)
	first := filepath.Join(dir, "first")
	if err := sim.New(sim.Options{Seed: 1}).WriteConfig(first, sim.ConfigOptions{HTTPPort: n, AcctDir: acctDir, AcctRecords: "d,b,t"}); err != nil {
		t.Fatal(err)
	}
	before, err := pmtaconf.Load(first)
	if err != nil {
		t.Fatal(err)
	}
	if c := pmtaconf.Diff(before, after); len(c) != 1 || c[0].String() != "<domain $yahoo> max-smtp-out 10 → 12" {
		t.Errorf("changes %v", c)
	}
}

// poolAttempts counts d, t and b records (attempts) and t records from
// pool-microsoft and pool-gmail in the accounting files of dir.
func poolAttempts(t *testing.T, dir string) (ms, gm [2]int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "acct-*.csv"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\r\n") {
			typ, _, _ := strings.Cut(line, ",")
			if typ != "d" && typ != "t" && typ != "b" {
				continue
			}
			var c *[2]int
			switch {
			case strings.Contains(line, ",pool-microsoft,"):
				c = &ms
			case strings.Contains(line, ",pool-gmail,"):
				c = &gm
			default:
				continue
			}
			c[0]++
			if typ == "t" {
				c[1]++
			}
		}
	}
	return ms, gm
}

func TestRunFailsOnAScenarioTheModelCannotHold(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-vmtas", "2", "-scenario", "pool-throttle"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pool-throttle: the model has no vmta in pool-microsoft") {
		t.Errorf("run: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.csv")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-acct-generate", "500", "-acct-out", out}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Count(b, []byte("\r\n")); got < 501 || !strings.Contains(stdout.String(), "wrote 500 records") {
		t.Errorf("%d lines, stdout %q", got, stdout.String())
	}
}

// TestServe runs the whole command: HTTPS with a generated certificate, an API
// key, accounting files moved on shutdown, and a clean stop on cancel.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	certOut, acctDir, moveTo := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "acct"), filepath.Join(dir, "done")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-tls", "-tls-cert-out", certOut, "-api-key", "sekret",
			"-acct-dir", acctDir, "-acct-move-to", moveTo, "-acct-rate", "1000", "-restart-every", "1h"}, &stdout, io.Discard)
	}()
	re := regexp.MustCompile(`listening on (https://\S+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no listening line: %q", stdout.String())
	}
	pemBytes, err := os.ReadFile(certOut)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	fetch := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/status.json", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := fetch("sekret"); code != http.StatusOK {
		t.Errorf("with key: %d", code)
	}
	if code := fetch(""); code != http.StatusForbidden {
		t.Errorf("without key: %d", code)
	}
	time.Sleep(700 * time.Millisecond) // a few accounting steps
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	files, _ := filepath.Glob(filepath.Join(moveTo, "acct-*.csv"))
	left, _ := filepath.Glob(filepath.Join(acctDir, "*.csv"))
	if len(files) == 0 || len(left) != 0 {
		t.Fatalf("moved %v, left %v", files, left)
	}
	b, _ := os.ReadFile(files[0])
	if lines := bytes.Count(b, []byte("\r\n")); lines < 100 {
		t.Errorf("only %d lines written", lines)
	}
}
