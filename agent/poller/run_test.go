package poller

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestRunEmitsUntilCancelled(t *testing.T) {
	srv := serveDir(t, jsonDocs(), nil)
	cfg := allEndpoints(Config{URL: srv.URL, Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Jitter: 2 * time.Millisecond})
	p, _ := newTestPoller(t, cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan agent.Batch, 10)
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(b agent.Batch) {
			select {
			case batches <- b:
			default:
			}
		})
	}()
	for range 3 {
		select {
		case b := <-batches:
			if up := upValue(t, b); up != int64(1) {
				t.Errorf("up = %v", up)
			}
			if len(b.Points) != 10 {
				t.Errorf("%d points, want 10", len(b.Points))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no batch from Run")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if polls := statValue(t, p, "polls"); polls < 3 {
		t.Errorf("polls = %d, want at least 3", polls)
	}
}

// TestRunUnreachable: a dead API yields up=0 batches and no error from Run.
func TestRunUnreachable(t *testing.T) {
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	p, _ := newTestPoller(t, allEndpoints(Config{URL: srv.URL, Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := p.Run(ctx, func(b agent.Batch) {
		onlyUpZero(t, b)
		if n++; n == 3 {
			cancel()
		}
	})
	if err != nil {
		t.Errorf("Run returned %v", err)
	}
}

// TestRunCancelledMidRound: a round cut short by shutdown is not emitted.
func TestRunCancelledMidRound(t *testing.T) {
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	p, _ := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	emitted := 0
	if err := p.Run(ctx, func(agent.Batch) { emitted++ }); err != nil {
		t.Errorf("Run returned %v", err)
	}
	if emitted != 0 {
		t.Errorf("%d batches emitted from a cancelled round", emitted)
	}
	if e := statValue(t, p, "errors"); e != 0 {
		t.Errorf("errors = %d; a shutdown is not a PowerMTA failure", e)
	}
}

func TestFailureLoggingIsRateLimited(t *testing.T) {
	var failing sync.Map
	failing.Store("on", true)
	docs := docHandler(t, jsonDocs(), nil)
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if v, _ := failing.Load("on"); v.(bool) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		docs.ServeHTTP(w, r)
	})
	logs := logtest.New()
	p, clock := newTestPoller(t, Config{URL: srv.URL, Endpoints: Endpoints{Status: true}, APIKey: testKey}, logs.Logger())
	ctx := context.Background()
	count := func(msg string) int {
		n := 0
		for _, r := range logs.Records() {
			if r.Msg == msg {
				n++
			}
		}
		return n
	}

	for range 9 { // nine minutes of failures: one line
		_, _ = p.Gather(ctx)
		clock.advance(time.Minute)
	}
	if n := count("PowerMTA API endpoint failing"); n != 1 {
		t.Errorf("%d 'failing' lines after 9 failed rounds, want 1\n%s", n, logs)
	}
	if n := count("PowerMTA API endpoint still failing"); n != 0 {
		t.Errorf("%d 'still failing' lines before 10 minutes", n)
	}
	_, _ = p.Gather(ctx) // minute 9
	clock.advance(time.Minute)
	_, _ = p.Gather(ctx) // minute 10: a reminder
	if n := count("PowerMTA API endpoint still failing"); n != 1 {
		t.Errorf("%d 'still failing' lines at 10 minutes, want 1\n%s", n, logs)
	}
	failing.Store("on", false)
	clock.advance(time.Minute)
	if _, err := p.Gather(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count("PowerMTA API endpoint answering again"); n != 1 {
		t.Errorf("%d recovery lines, want 1\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "http-access") {
		t.Errorf("the 403 explanation is not in the log:\n%s", logs)
	}
	if strings.Contains(logs.String(), testKey) {
		t.Error("the API key appears in the log")
	}
	if e := statValue(t, p, "errors"); e != 11 {
		t.Errorf("errors = %d, want 11", e)
	}
	if s := statValue(t, p, "last_success_unix"); s != clock.now().Unix() {
		t.Errorf("last_success_unix = %d, want %d", s, clock.now().Unix())
	}
}
