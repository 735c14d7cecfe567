package poller

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// counterServer serves a /status document whose totals a test sets.
type counterServer struct {
	mu                   sync.Mutex
	startup              string
	outRcp, inRcp, inMsg int64
	outKB                float64
	fail                 bool
}

func (s *counterServer) set(f func(s *counterServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *counterServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, `{"data":{"status":{"timeNow":"2024-01-15 10:25:00","startupTime":%q,`+
		`"traffic":{"total":{"out":{"rcp":%d,"msg":%d,"kb":%g},"in":{"rcp":%d,"msg":%d,"kb":1.5},`+
		`"bounceProcessed":1,"feedbackLoopProcessed":0}},"queue":{"smtp":{"rcp":10,"dom":1,"kb":2.5}}}},`+
		`"status":"success","message":""}`, s.startup, s.outRcp, s.outRcp, s.outKB, s.inRcp, s.inMsg)
}

func rateFields(b agent.Batch) map[string]float64 {
	m := map[string]float64{}
	for _, f := range b.Points[0].Fields {
		switch f.Key {
		case "out_rcp_per_sec", "in_rcp_per_sec", "out_kb_per_sec", "in_msg_per_sec":
			m[f.Key] = f.Value.(float64)
		}
	}
	return m
}

func TestRatesAndRestarts(t *testing.T) {
	cs := &counterServer{startup: "2024-01-12 03:14:55", outRcp: 1000, inRcp: 2000, inMsg: 100, outKB: 5000}
	srv := failingServer(t, cs.ServeHTTP)
	p, clock := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}}, nil)
	ctx := context.Background()

	round := func(t *testing.T) agent.Batch {
		t.Helper()
		b, _ := p.Gather(ctx)
		return b
	}
	steps := []struct {
		name     string
		change   func(s *counterServer)
		wait     time.Duration
		want     map[string]float64
		restarts int64
	}{
		{name: "first poll has no rate", change: func(*counterServer) {}, want: map[string]float64{}},
		{name: "deltas over 60s", wait: time.Minute, change: func(s *counterServer) {
			s.outRcp += 600
			s.inRcp += 1200
			s.inMsg += 30
			s.outKB += 3000
		}, want: map[string]float64{"out_rcp_per_sec": 10, "in_rcp_per_sec": 20, "in_msg_per_sec": 0.5, "out_kb_per_sec": 50}},
		// Counters higher than before: only startupTime tells of the
		// restart, and a rate across it would be nonsense.
		{name: "restart: startupTime changed", wait: time.Minute, change: func(s *counterServer) {
			s.startup = "2024-01-15 10:24:30"
			s.outRcp, s.inRcp, s.inMsg, s.outKB = 50000, 50000, 500, 90000
		}, want: map[string]float64{}, restarts: 1},
		{name: "restart: counters dropped", wait: time.Minute, change: func(s *counterServer) {
			s.startup = "2024-01-15 10:25:30"
			s.outRcp, s.inRcp, s.inMsg, s.outKB = 5, 5, 1, 1
		}, want: map[string]float64{}, restarts: 2},
		{name: "rates resume from the new baseline", wait: 30 * time.Second, change: func(s *counterServer) {
			s.outRcp += 30
			s.inRcp += 60
			s.inMsg += 3
			s.outKB += 15
		}, want: map[string]float64{"out_rcp_per_sec": 1, "in_rcp_per_sec": 2, "in_msg_per_sec": 0.1, "out_kb_per_sec": 0.5}, restarts: 2},
		{name: "reset counters: totals dropped, same startupTime", wait: time.Minute, change: func(s *counterServer) {
			s.outRcp, s.inRcp = 0, 0
		}, want: map[string]float64{}, restarts: 3},
		{name: "a failed poll", wait: time.Minute, change: func(s *counterServer) { s.fail = true }, want: map[string]float64{}, restarts: 3},
		{name: "rate spans the gap", wait: time.Minute, change: func(s *counterServer) {
			s.fail = false
			s.outRcp += 240 // over the two minutes since the last good poll
			s.inRcp += 0
		}, want: map[string]float64{"out_rcp_per_sec": 2, "in_rcp_per_sec": 0, "in_msg_per_sec": 0, "out_kb_per_sec": 0}, restarts: 3},
		{name: "polls too close together", wait: 100 * time.Millisecond, change: func(s *counterServer) { s.outRcp += 10 }, want: map[string]float64{}, restarts: 3},
	}
	for _, st := range steps {
		clock.advance(st.wait)
		cs.set(st.change)
		b := round(t)
		got := rateFields(b)
		if len(got) != len(st.want) {
			t.Errorf("%s: rates = %v, want %v", st.name, got, st.want)
		}
		for k, w := range st.want {
			if g, ok := got[k]; !ok || g < w-1e-9 || g > w+1e-9 {
				t.Errorf("%s: %s = %v, want %v", st.name, k, g, w)
			}
		}
		for k, g := range got {
			if g < 0 {
				t.Errorf("%s: negative rate %s = %v", st.name, k, g)
			}
		}
		if r := statValue(t, p, "pmta_restarts"); r != st.restarts {
			t.Errorf("%s: pmta_restarts = %d, want %d", st.name, r, st.restarts)
		}
	}
}

func TestObserveKBDropIsRestart(t *testing.T) {
	var r rateState
	c := func(kb float64) counters { return counters{startup: "s", outKB: flexFloat{v: kb, ok: true}} }
	if rates, restart := r.observe(c(100), t0); rates != nil || restart != "" {
		t.Fatalf("first observation: %v %q", rates, restart)
	}
	if rates, restart := r.observe(c(50), t0.Add(time.Minute)); rates != nil || restart == "" {
		t.Fatalf("kb went down: rates %v, restart %q; want a restart and no rate", rates, restart)
	}
}
