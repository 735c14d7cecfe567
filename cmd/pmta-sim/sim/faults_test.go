package sim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaultDown(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	s.SetFaults(Faults{Down: true})
	for _, p := range []string{"/status", "/queue.csv", "/ui"} {
		if code, _ := get(t, srv, p); code != http.StatusServiceUnavailable {
			t.Errorf("%s while down: %d", p, code)
		}
	}
	if code, _ := postCommand(t, srv, "pause queue gmail.com", "json"); code != http.StatusServiceUnavailable {
		t.Errorf("command while down: %d", code)
	}
	for _, q := range s.Snapshot().Queues {
		if q.Domain == "gmail.com" && q.Paused {
			t.Error("a command ran while down")
		}
	}
	s.SetFaults(Faults{})
	if code, _ := get(t, srv, "/status"); code != http.StatusOK {
		t.Errorf("back up: %d", code)
	}
}

// codes returns the status codes of n requests to a fresh model with f.
func codes(t *testing.T, seed int64, f Faults, n int) []int {
	t.Helper()
	s, _, srv := newTestSim(t, Options{Seed: seed})
	s.SetFaults(f)
	out := make([]int, n)
	for i := range out {
		out[i], _ = get(t, srv, "/status.json")
	}
	return out
}

func TestFaultErrorRate(t *testing.T) {
	a := codes(t, 5, Faults{ErrorRate: 0.3}, 200)
	b := codes(t, 5, Faults{ErrorRate: 0.3}, 200)
	failed := 0
	for i, c := range a {
		if c != b[i] {
			t.Fatalf("request %d: %d vs %d: faults must follow the seed", i, c, b[i])
		}
		switch c {
		case http.StatusInternalServerError:
			failed++
		case http.StatusOK:
		default:
			t.Fatalf("unexpected status %d", c)
		}
	}
	if failed < 40 || failed > 80 {
		t.Errorf("%d of 200 failed, want about 60", failed)
	}
	for _, c := range codes(t, 5, Faults{ErrorRate: 1}, 10) {
		if c != http.StatusInternalServerError {
			t.Errorf("error rate 1: %d", c)
		}
	}
}

func TestFaultGarbage(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	s.SetFaults(Faults{GarbageRate: 1})
	kinds := map[string]bool{}
	for i := 0; i < 40; i++ {
		code, b := get(t, srv, "/status?format=json")
		if code != http.StatusOK {
			t.Fatalf("garbage keeps the status: %d", code)
		}
		var env jsonEnvelope
		if err := json.Unmarshal(b, &env); err == nil {
			t.Fatalf("garbage decoded as JSON: %.100s", b)
		}
		switch {
		case strings.HasPrefix(string(b), `{"data":`):
			kinds["truncated"] = true
		case strings.Contains(string(b), "502 Bad Gateway"):
			kinds["html"] = true
		default:
			kinds["noise"] = true
		}
	}
	if len(kinds) != 3 {
		t.Errorf("garbage kinds seen: %v", kinds)
	}
	s.SetFaults(Faults{GarbageRate: 0})
	var st wStatusData
	envelope(t, getOK(t, srv, "/status"), &st)
}

func TestFaultDelay(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	s.SetFaults(Faults{Delay: 80 * time.Millisecond})
	start := time.Now()
	getOK(t, srv, "/status.json")
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Errorf("answered after %v, want at least the delay", el)
	}
}
