package otlp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent"
)

func serverPoints(servers ...string) []agent.Point {
	pts := make([]agent.Point, 0, len(servers))
	for _, s := range servers {
		pts = append(pts, agent.NewPoint("pmta_status", tags("server", s), fields("up", int64(1)), t0))
	}
	return pts
}

// hostStatus answers each export with the status chosen for its host.name.
func hostStatus(t *testing.T, codes map[string]int) (*sync.Map, http.HandlerFunc) {
	seen := &sync.Map{}
	return seen, func(w http.ResponseWriter, r *http.Request) {
		req := decodeHTTPRequest(t, r)
		host := resourceHost(req)
		n, _ := seen.LoadOrStore(host, new(int))
		*n.(*int)++
		if code := codes[host]; code != 0 {
			httpStatus(code, "no "+host)(w, r)
			return
		}
		writeProto(w, nil)
	}
}

func TestWriteSeveralServers(t *testing.T) {
	t.Run("a failure reports the settled prefix", func(t *testing.T) {
		seen, h := hostStatus(t, map[string]int{"b": 503})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a", "a", "b", "c"))
		var pw interface{ Settled() int }
		if !errors.As(err, &pw) || pw.Settled() != 2 {
			t.Fatalf("Write: %v, want 2 settled", err)
		}
		if kind, _ := agent.Classify(err); kind != agent.Retryable {
			t.Errorf("kind %s", kind)
		}
		if _, ok := seen.Load("c"); ok {
			t.Error("the export after the failure was sent")
		}
	})
	t.Run("a rejection does not stop the others", func(t *testing.T) {
		seen, h := hostStatus(t, map[string]int{"a": 400})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a", "b", "b"))
		var pw *PartialWriteError
		if !errors.As(err, &pw) || pw.Written != 2 || pw.Rejected != 1 || pw.Settled() != 3 {
			t.Fatalf("Write: %v, want 2 written and 1 rejected", err)
		}
		if kind, _ := agent.Classify(err); kind != agent.Permanent {
			t.Errorf("kind %s", kind)
		}
		if _, ok := seen.Load("b"); !ok {
			t.Error("the export after the rejection was not sent")
		}
	})
	t.Run("all rejected", func(t *testing.T) {
		_, h := hostStatus(t, map[string]int{"a": 400})
		s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: startHTTP(t, h).URL})
		err := s.Write(context.Background(), serverPoints("a"))
		var pw *PartialWriteError
		if kind, _ := agent.Classify(err); kind != agent.Permanent || errors.As(err, &pw) {
			t.Fatalf("Write: %v, want a plain permanent error", err)
		}
	})
}

func TestWriteNothingToSend(t *testing.T) {
	_, h := hostStatus(t, nil)
	srv := startHTTP(t, h)
	s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL})
	only := []agent.Point{agent.NewPoint("pmta_x", tags("server", "z"), fields("text", "no number"), t0)}
	if err := s.Write(context.Background(), only); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	stats := map[string]any{}
	for _, f := range s.Stats() {
		stats[f.Key] = f.Value
	}
	if stats["fields_unsupported"] != int64(1) || stats["data_points"] != int64(0) {
		t.Errorf("stats %v", stats)
	}
}

func TestCloseThenWrite(t *testing.T) {
	s, err := New(Config{Protocol: ProtocolGRPC, Insecure: true}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "otlp" {
		t.Errorf("Name %q", s.Name())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err = s.Write(context.Background(), familyPoints())
	if kind, _ := agent.Classify(err); err == nil || kind != agent.Retryable || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Write after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		errs []string // each must appear in the one error
	}{
		{"grpc with a scheme", Config{Endpoint: "http://c:4317"}, []string{"without a scheme"}},
		{"grpc without a port", Config{Endpoint: "collector"}, []string{"host:port"}},
		{"grpc insecure with tls", Config{Insecure: true, TLS: agent.TLSConfig{CAFile: "x"}}, []string{"exclude each other"}},
		{"http without scheme", Config{Protocol: "http", Endpoint: "c:4318"}, []string{"http:// or https://"}},
		{"http with credentials", Config{Protocol: "http", Endpoint: "https://u:p@c"}, []string{"headers, not in the URL"}},
		{"http insecure https", Config{Protocol: "http", Endpoint: "https://c", Insecure: true}, []string{"https but insecure"}},
		{"http tls on plaintext", Config{Protocol: "http", Endpoint: "http://c", TLS: agent.TLSConfig{ServerName: "c"}}, []string{"plaintext http but tls"}},
		{"everything wrong at once", Config{Protocol: "udp", Timeout: -1, Temporality: "weekly",
			Headers: map[string]string{"bad name": "v", "X-Ok": "a\nb"}, Resource: map[string]string{"": "v"}},
			[]string{"protocol \"udp\"", "timeout", "temporality \"weekly\"", "header name \"bad name\"", "X-Ok", "attribute name is empty"}},
		{"cumulative without a state dir", Config{Temporality: "cumulative"}, []string{"state_dir is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, discard())
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, want := range c.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "a\nb") || strings.Contains(err.Error(), ":p@") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
}

func TestConfigDefaultsAndURL(t *testing.T) {
	cases := []struct {
		cfg      Config
		endpoint string
		url      string
	}{
		{Config{}, DefaultGRPCEndpoint, ""},
		{Config{Protocol: "http"}, DefaultHTTPEndpoint, "http://127.0.0.1:4318/v1/metrics"},
		{Config{Protocol: "http", Endpoint: "https://gw.example/otlp/"}, "https://gw.example/otlp/", "https://gw.example/otlp/v1/metrics"},
		{Config{Protocol: "http", Endpoint: "https://gw.example/v1/metrics"}, "https://gw.example/v1/metrics", "https://gw.example/v1/metrics"},
	}
	for _, c := range cases {
		got, u, err := c.cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if got.Endpoint != c.endpoint || u != c.url || got.Timeout != DefaultTimeout || got.Temporality != TemporalityDelta {
			t.Errorf("%+v: endpoint %q url %q timeout %s temporality %s", c.cfg, got.Endpoint, u, got.Timeout, got.Temporality)
		}
	}
	cfg := Config{Headers: map[string]string{"Authorization": "Bearer " + token}}
	for _, s := range []string{cfg.String(), cfg.GoString(), cfg.LogValue().String()} {
		if strings.Contains(s, token) || !strings.Contains(s, "Authorization:[redacted]") {
			t.Errorf("config shown as %q", s)
		}
	}
}
