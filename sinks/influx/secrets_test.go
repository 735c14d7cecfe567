package influx

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// echoAuth answers status with the request's Authorization header in every
// place a server or proxy might put it.
func echoAuth(status int, shape string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch shape {
		case "v2":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":"unauthorized","message":"bad credentials %q"}`, auth)
		case "v1":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Influxdb-Error", "no user for "+auth)
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"no user for %q"}`, auth)
		case "v3":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"rejected %q"}`, auth)
		default:
			w.WriteHeader(status)
			fmt.Fprintf(w, "proxy says: %s", auth)
		}
	}
}

// TestSecretsNeverShown checks errors, the endpoint, Validate's problems and
// every line the sink logs (at debug level) for the token, the password of a
// 1.8 "user:password" token and a URL password.
func TestSecretsNeverShown(t *testing.T) {
	const (
		token2   = "tOkEn-2x-Zm9vYmFy=="
		password = "pa55-W0RD-q"
		token18  = "writer:" + password
		urlPass  = "url-Pa55-k"
	)
	forbidden := []string{token2, password, urlPass, base64.StdEncoding.EncodeToString([]byte("admin:" + urlPass))}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var shown []string
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		shown = append(shown, fmt.Sprintf("%s: %v | %+v | %#v", what, err, err, err.Error()))
	}

	for _, token := range []string{token2, token18} {
		for _, status := range []int{400, 401, 403, 404, 413, 429, 500} {
			for _, shape := range []string{"v2", "v1", "v3", "text"} {
				srv := newServer(t, echoAuth(status, shape))
				s, err := New(Config{URL: srv.URL, Bucket: "b", Token: token}, log)
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("write %d %s", status, shape), s.Write(context.Background(), testPoints(3)))
				check(fmt.Sprintf("ping %d %s", status, shape), s.Ping(context.Background()))
				_ = s.Close()
			}
		}
	}

	// Credentials in the URL: echoed back, and in a transport error.
	srv := newServer(t, echoAuth(401, "text"))
	withPass := strings.Replace(srv.URL, "http://", "http://admin:"+urlPass+"@", 1)
	s := newSink(t, Config{URL: withPass, Bucket: "b"})
	check("url credentials echoed", s.Write(context.Background(), testPoints(1)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://admin:" + urlPass + "@" + ln.Addr().String()
	_ = ln.Close()
	s, err = New(Config{URL: refused, Bucket: "b", Token: token18}, log)
	if err != nil {
		t.Fatal(err)
	}
	check("refused", s.Write(context.Background(), testPoints(1)))
	check("refused ping", s.Ping(context.Background()))
	// The delivery loop logs the sink's endpoint with each failure.
	shown = append(shown, "endpoint: "+s.Endpoint())
	_, err = New(Config{URL: refused, Token: token18}, log) // no bucket
	check("config", err)
	cfg := Config{URL: refused, Token: token18, Bucket: "b"}
	for _, err := range cfg.Validate() {
		shown = append(shown, "validate: "+err.Error())
	}

	all := strings.Join(shown, "\n") + "\n" + logs.String()
	for _, secret := range forbidden {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q shown:\n%s", secret, all)
		}
	}
	// The checks above must have seen the echoes, or they prove nothing.
	if !strings.Contains(all, "[redacted]") {
		t.Errorf("no echoed credential was redacted; the servers did not echo:\n%s", all)
	}
	// Failures are the delivery loop's to log; what the sink logs itself
	// (its start-up line, with the URL) must have been seen.
	if !strings.Contains(logs.String(), "influx sink configured") || !strings.Contains(all, "endpoint: http://admin:xxxxx@") {
		t.Errorf("the sink's log lines or its endpoint were not checked:\n%s", all)
	}
}

func TestShortPasswordDoesNotGarble(t *testing.T) {
	sec := newSecrets("u:p", nil)
	got := sec.Scrub(`database not found: "pmta"; echo Token u:p`)
	if want := `database not found: "pmta"; echo Token [redacted]`; got != want {
		t.Errorf("scrub = %q, want %q", got, want)
	}
}

func TestConfigPrintingMasksSecrets(t *testing.T) {
	cfg := Config{URL: "https://admin:url-Pa55-k@influx:8086", Bucket: "b", Token: "tOkEn-2x-Zm9vYmFy=="}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "influx", cfg)
	out := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg) + logs.String()
	for _, secret := range []string{"tOkEn-2x-Zm9vYmFy==", "url-Pa55-k"} {
		if strings.Contains(out, secret) {
			t.Errorf("printing the config shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "Bucket:b") || !strings.Contains(out, "[redacted]") {
		t.Errorf("printed config lost its content:\n%s", out)
	}
}
