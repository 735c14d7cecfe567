package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
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
	for _, args := range [][]string{{"-acct-generate", "10"}, {"extra"}, {"-rate", "x"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("PMTA_SIM_API_KEY", "fromenv")
	c, err := parseFlags(nil, io.Discard)
	if err != nil || c.apiKey != "fromenv" || c.listen != "127.0.0.1:8080" {
		t.Errorf("defaults: %+v %v", c, err)
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
