package main

// Adversarial probe of the verdict window across SIGHUP reloads of the
// whole agent, in-process: records flow in real time while the accounting
// tailer is replaced twice with the same verdict settings (the window
// carries on) and once with others (a new window).

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// advVerdictHeader is PowerMTA 4.5/5.0's default d/b header.
const advVerdictHeader = "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool\r\n"

// advVerdictWriter appends records logged now to one file: for each of
// five source IPs of pool-yahoo, perIP records each time, the fifth
// deferring 40 %, the others 2 %. It counts what it wrote per IP.
type advVerdictWriter struct {
	path    string
	mu      sync.Mutex
	written map[string]int64
	n       int64
}

func (w *advVerdictWriter) write(t *testing.T, perIP int) {
	t.Helper()
	var b strings.Builder
	w.mu.Lock()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05-0700")
	for ipN := 1; ipN <= 5; ipN++ {
		ip := fmt.Sprintf("203.0.113.%d", ipN)
		pct := int64(2)
		if ipN == 5 {
			pct = 40
		}
		for range perIP {
			typ := "d"
			if w.written[ip]%100 < pct {
				typ = "t"
			}
			w.written[ip]++
			w.n++
			fmt.Fprintf(&b, "%s,%s,%s,b@em.example,u%d@yahoo.com,,relayed,2.0.0,smtp;250 ok,mx,,smtp,,smtp,%s,198.51.100.7,,100,vmta-%d,,,yahoo.com/vmta,pool-yahoo\r\n",
				typ, ts, ts, w.n, ip, ipN)
		}
	}
	w.mu.Unlock()
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func (w *advVerdictWriter) total(ip string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written[ip]
}

// TestAdvHeldReloadCarriesVerdictWindow: two reloads that replace the
// tailer with the same window and step (thresholds may change) carry the window on — window_s
// keeps growing, and the last window counts every record written exactly
// once; a reload with another window starts a new one. No
// verdict series is written twice at one time or goes back in time, and
// every field is finite.
func TestAdvHeldReloadCarriesVerdictWindow(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	config := func(pollEvery string, minAttempts int, window string) string {
		return fmt.Sprintf(`server: verdict-mta
state_dir: %s
self_interval: 1h
shutdown_timeout: 5s
listen: {enabled: false}
api: {enabled: false}
acct:
  enabled: true
  start_at: beginning
  poll_every: %s
  interval: 1s
  grace: 100ms
  globs: [%s/*.csv]
  verdict: {enabled: true, window: %s, every: 1s, min_attempts: %d, warn_pct: 5}
sinks: {stdout: {enabled: true}}
`, filepath.Join(dir, "state"), pollEvery, logs, window, minAttempts)
	}
	writeTestFile(t, cfgPath, config("50ms", 20, "2m"))
	w := &advVerdictWriter{path: filepath.Join(logs, "acct-2024-01-01-0000.csv"), written: map[string]int64{}}
	writeTestFile(t, w.path, advVerdictHeader)

	out, errs := &syncBuffer{}, &syncBuffer{}
	hups := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmdRun(ctx, []string{"-config", cfgPath}, out, errs, hups) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)

	// The writer: 10 records per IP every 100 ms while writing is on.
	var writing sync.WaitGroup
	flow := func(d time.Duration) {
		writing.Go(func() {
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				w.write(t, 10)
			}
		})
		writing.Wait()
	}
	reload := func(n int, body string) {
		writeTestFile(t, cfgPath, body)
		hups <- syscall.SIGHUP
		waitUntil(t, 30*time.Second, fmt.Sprintf("reload %d", n), func() bool {
			return strings.Count(errs.String(), "configuration reloaded") >= n
		})
	}
	ipRows := func() []lpPoint {
		var lines []string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "pmta_verdict,") && strings.Contains(l, "scope=ip") {
				lines = append(lines, l)
			}
		}
		return decodeLines(t, []byte(strings.Join(lines, "\n")+"\n"))
	}
	lastOf := func(rows []lpPoint, ip string) (lpPoint, bool) {
		for i := len(rows) - 1; i >= 0; i-- {
			if rows[i].tags["source_ip"] == ip {
				return rows[i], true
			}
		}
		return lpPoint{}, false
	}

	flow(1500 * time.Millisecond)
	reload(1, config("60ms", 20, "2m"))
	flow(1500 * time.Millisecond)
	reload(2, config("70ms", 21, "2m"))
	flow(1500 * time.Millisecond)
	// Every record of the three phases in the last window, once.
	waitUntil(t, 30*time.Second, "the last window to hold every record", func() bool {
		rows := ipRows()
		for ipN := 1; ipN <= 5; ipN++ {
			ip := fmt.Sprintf("203.0.113.%d", ipN)
			r, ok := lastOf(rows, ip)
			if !ok || r.fields["attempts"] != w.total(ip) {
				return false
			}
		}
		return true
	})
	rows := ipRows()
	if r, _ := lastOf(rows, "203.0.113.5"); r.fields["verdict"] != int64(1) {
		t.Errorf("the IP at 40 %%: %v, want ip_specific", r.fields)
	}
	if r, _ := lastOf(rows, "203.0.113.1"); r.fields["attempts"].(int64) > w.total("203.0.113.1") {
		t.Errorf("counted twice: %v", r.fields)
	}
	// window_s never went back across the two reloads: the window carried on.
	var prevWS int64
	for _, r := range rows {
		if r.tags["source_ip"] != "203.0.113.1" {
			continue
		}
		ws := r.fields["window_s"].(int64)
		if ws < prevWS {
			t.Fatalf("window_s went back from %d to %d: the window did not carry on", prevWS, ws)
		}
		prevWS = ws
	}
	carried := prevWS

	// Another window: a new one, whose window_s starts over (the second
	// reload changed only min_attempts, which the window takes on).
	reload(3, config("70ms", 21, "3m"))
	flow(1500 * time.Millisecond)
	waitUntil(t, 30*time.Second, "verdicts of the new window", func() bool {
		r, ok := lastOf(ipRows(), "203.0.113.1")
		return ok && r.fields["window_s"].(int64) < carried
	})
	stop()

	all := ipRows()
	seen := map[string]bool{}
	lastAt := map[string]time.Time{}
	for _, r := range all {
		k := fmt.Sprint(r.tags, r.time.UnixNano())
		if seen[k] {
			t.Fatalf("%v at %v written twice", r.tags, r.time)
		}
		seen[k] = true
		s := fmt.Sprint(r.tags)
		if at, ok := lastAt[s]; ok && !r.time.After(at) {
			t.Fatalf("%v at %v after %v", r.tags, r.time, at)
		}
		lastAt[s] = r.time
		for name, v := range r.fields {
			if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				t.Fatalf("%v: %s = %v", r.tags, name, f)
			}
		}
	}
	if ips := slices.Sorted(func(yield func(string) bool) {
		got := map[string]bool{}
		for _, r := range all {
			if !got[r.tags["source_ip"]] {
				got[r.tags["source_ip"]] = true
				if !yield(r.tags["source_ip"]) {
					return
				}
			}
		}
	}); len(ips) != 5 {
		t.Fatalf("source IPs %v", ips)
	}
}
