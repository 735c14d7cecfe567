package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readyz returns /readyz's status code and problems.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Problems []string `json:"problems"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, strings.Join(body.Problems, "; ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// /readyz turns unready when the API or the sink is down and ready again
// when they recover; /metrics stays up throughout.
func TestReadyzFollowsAPIAndSink(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_ready"
	srv.CreateDatabase(db)
	s := sim.New(sim.Options{Seed: 9})
	s.SetFaults(sim.Faults{Down: true})
	api := httptest.NewServer(s.Handler())
	defer api.Close()

	cfg := e2eConfig(t, api.URL, "pmta", "json", srv.URL, db)
	cfg.API.Interval = 500 * time.Millisecond
	cfg.API.Timeout = 400 * time.Millisecond
	cfg.Listen.Address = freeAddr(t)
	cfg.Listen.MaxSinkFailure = time.Second
	cfg.SelfInterval = 200 * time.Millisecond // points for the sink to fail on
	cfg.Sinks.Influx.Timeout = time.Second
	cfg.Sinks.Influx.Buffer.MaxBackoff = 300 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, io.Discard, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent stopped with: %v", err)
		}
	}()
	addr := cfg.Listen.Address

	waitFor(t, "unready while the API is down", func() bool {
		code, why := readyz(t, addr)
		return code == 503 && strings.Contains(why, "api:")
	})
	s.SetFaults(sim.Faults{})
	waitFor(t, "ready once the API answers", func() bool { code, _ := readyz(t, addr); return code == 200 })

	srv.Stop()
	waitFor(t, "unready while InfluxDB is down", func() bool {
		code, why := readyz(t, addr)
		return code == 503 && strings.Contains(why, "sink_influx: failing")
	})
	srv.Restart()
	waitFor(t, "ready once InfluxDB is back", func() bool { code, _ := readyz(t, addr); return code == 200 })

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"pmta_agent_build_info{", `pmta_agent_polls_total{component="api"}`, `pmta_agent_errors_total{component="sink_influx"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
