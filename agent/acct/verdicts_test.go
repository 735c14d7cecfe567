package acct

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// poolRecords writes n attempts a second for secs seconds from start, to
// yahoo.com through five IPs of pool-yahoo: 203.0.113.5 defers badPct %
// of its attempts, the others 2 %; and a little of everything else (r
// records, a record without a source IP) that the verdicts leave out.
func poolRecords(start time.Time, secs, n int, badPct int) []byte {
	var b bytes.Buffer
	b.WriteString(header23 + "\r\n")
	i := 0
	for s := range secs {
		ts := start.Add(time.Duration(s) * time.Second).Format("2006-01-02 15:04:05-0700")
		for j := range n {
			ipN := j%5 + 1
			pct := 2
			if ipN == 5 {
				pct = badPct
			}
			typ := "d"
			if i/5%100 < pct {
				typ = "t"
			}
			i++
			ip := fmt.Sprintf("203.0.113.%d", ipN)
			b.WriteString(csvLine([]string{typ, ts, ts, "b@em.example", fmt.Sprintf("u%d@yahoo.com", i), "", "relayed",
				"2.0.0", "smtp;250 ok", "mx", "", "smtp", "", "smtp", ip, "198.51.100.7", "", "100",
				fmt.Sprintf("vmta-yh-%d", ipN), "", "", "yahoo.com/vmta", "pool-yahoo"}, true))
		}
		b.WriteString(csvLine([]string{"r", ts, ts, "b@em.example", "x@yahoo.com", "", "", "", "", "", "", "smtp", "", "", "", "", "", "1", "", "", "", "", ""}, true))
		b.WriteString(csvLine([]string{"d", ts, ts, "b@em.example", "x@yahoo.com", "", "relayed", "2.0.0", "", "", "", "smtp", "", "smtp", "", "", "", "1", "", "", "", "", ""}, true))
	}
	return b.Bytes()
}

// TestTailerVerdicts: the tailer judges its closed intervals and emits
// pmta_verdict points with its batches, logs the change, counts the points,
// and a tailer replacing it at a reload carries the window on.
func TestTailerVerdicts(t *testing.T) {
	var logs bytes.Buffer
	h := newHarness(t)
	h.log = slog.New(slog.NewTextHandler(&logs, nil))
	h.verdict = verdict.Config{Enabled: true, Window: 2 * time.Minute, Every: time.Minute, MinAttempts: 200, WarnPct: 5}
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(10 * time.Minute)
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), poolRecords(start, 180, 10, 40))
	h.start()
	h.poll()

	byStep := map[int64]map[string]int64{} // window end → "scope/ip" → verdict
	for _, b := range h.batches {
		for _, p := range b.Points {
			if p.Measurement != verdict.Measurement {
				continue
			}
			scope, _ := p.TagValue("scope")
			ip, _ := p.TagValue("source_ip")
			v, _ := p.FieldValue("verdict")
			if byStep[p.Time.Unix()] == nil {
				byStep[p.Time.Unix()] = map[string]int64{}
			}
			byStep[p.Time.Unix()][scope+"/"+ip] = v.(int64)
		}
	}
	end := start.Add(3 * time.Minute).Unix()
	if len(byStep) != 3 {
		t.Fatalf("verdicts at %d window ends, want 3 (each minute of records): %v", len(byStep), byStep)
	}
	// The first minute: 600 attempts, 120 an IP: too few.
	if got := byStep[end-120]["ip/203.0.113.5"]; got != int64(verdict.TooFew) {
		t.Errorf("after a minute: %d, want too_few", got)
	}
	last := byStep[end]
	want := map[string]int64{"pool/": 1, "ip/203.0.113.5": 1, "ip/203.0.113.1": 0, "ip/203.0.113.4": 0}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("last window: %s = %d, want %d (all: %v)", k, last[k], v, last)
		}
	}
	if len(last) != 6 {
		t.Errorf("last window: %d rows, want the pool and its 5 IPs (the record without an IP is left out): %v", len(last), last)
	}
	if !strings.Contains(logs.String(), "window_end=2024-01-15T15:2") {
		t.Errorf("the log does not say when (the records' time, not now):\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "verdict ip_specific"); n != 1 || !strings.Contains(logs.String(), "source_ip=203.0.113.5") {
		t.Errorf("log: %d ip_specific lines, want 1 naming the IP:\n%s", n, logs.String())
	}
	if got := h.stat("verdict_points"); got != 3*6 {
		t.Errorf("verdict_points = %d, want 18", got)
	}
	if got := h.stat("verdict_ip_specific"); got != 2 {
		t.Errorf("verdict_ip_specific = %d, want 2 (the IP and its pool)", got)
	}

	// A reload: the new tailer takes the window on; two more minutes with
	// the IP healed, and the window (2 minutes) no longer holds the bad ones.
	w := h.tl.VerdictWindow()
	h.stop()
	h.window = w
	h.batches = nil
	logs.Reset()
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0001.csv"), poolRecords(start.Add(3*time.Minute), 120, 10, 2))
	h.start()
	if h.tl.VerdictWindow() != w {
		t.Fatal("the new tailer did not take the window on")
	}
	h.poll()
	var lastV int64 = -2
	var windowS int64
	for _, b := range h.batches {
		for _, p := range b.Points {
			if ip, _ := p.TagValue("source_ip"); p.Measurement == verdict.Measurement && ip == "203.0.113.5" && p.Time.Unix() == end+120 {
				v, _ := p.FieldValue("verdict")
				ws, _ := p.FieldValue("window_s")
				lastV, windowS = v.(int64), ws.(int64)
			}
		}
	}
	if lastV != 0 || windowS != 120 {
		t.Errorf("two healthy minutes later: verdict %d over %d s, want 0 over 120", lastV, windowS)
	}
	if !strings.Contains(logs.String(), "verdict ip_specific over") || !strings.Contains(logs.String(), "now=ok") {
		t.Errorf("no line for the IP healing:\n%s", logs.String())
	}
	// Other thresholds: the window carries on with them; another length:
	// a new window.
	h.stop()
	h.verdict.MinAttempts = 100
	h.start()
	if h.tl.VerdictWindow() != w || w.Config().MinAttempts != 100 {
		t.Error("a new min_attempts did not carry the window on with it")
	}
	h.stop()
	h.verdict.Window = 3 * time.Minute
	h.start()
	if h.tl.VerdictWindow() == w {
		t.Error("another window length kept the old window")
	}
}

// TestReplayedCutsEmitNoVerdicts: a cut replayed after a crash was emitted
// before, with verdicts from a fuller window; the replay's window is the
// restart's, so it observes the intervals and emits none.
func TestReplayedCutsEmitNoVerdicts(t *testing.T) {
	agg := newAggregator(10*time.Second, 5, agent.NewISPMap(nil))
	agg.verdicts = verdict.NewWindow(verdict.DefaultConfig())
	p := newLineParser(agg, DefaultConfig().MaxLineBytes, timeRange{}, nil, nil)
	start := testStart.Truncate(time.Minute)
	data := poolRecords(start, 60, 10, 40)
	if used, _, _ := p.consume(&fileCursor{name: "replay"}, data, true, noUntil); used != len(data) || agg.records != 60*12 {
		t.Fatalf("consumed %d of %d bytes, %d records", used, len(data), agg.records)
	}
	agg.muted = true
	pts, _ := agg.closeBefore(start.Add(time.Minute).Unix())
	for _, pt := range pts {
		if pt.Measurement == verdict.Measurement {
			t.Fatalf("a muted close emitted %v", pt)
		}
	}
	if s := agg.verdicts.Stats(); s.Keys != 5 {
		t.Fatalf("the muted close observed %d keys, want 5", s.Keys)
	}
}

// TestVerdictsSurviveARestart: a tailer stopped saves its window and the
// next start carries on with it — full windows and no change logged again
// at once — while a window older than the checkpoint (a crash after it was
// saved) is dropped.
func TestVerdictsSurviveARestart(t *testing.T) {
	var logs bytes.Buffer
	h := newHarness(t)
	h.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.verdict = verdict.Config{Enabled: true, Window: 2 * time.Minute, Every: time.Minute, MinAttempts: 200, WarnPct: 5}
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(10 * time.Minute)
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), poolRecords(start, 180, 10, 40))
	h.start()
	h.poll()
	h.stop()
	if !strings.Contains(logs.String(), "verdict ip_specific") {
		t.Fatalf("no ip_specific before the stop:\n%s", logs.String())
	}

	logs.Reset()
	h.batches = nil
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0001.csv"), poolRecords(start.Add(3*time.Minute), 60, 10, 40))
	h.start() // a new process: no window handed over
	h.poll()
	if !strings.Contains(logs.String(), "verdict window restored") {
		t.Fatalf("not restored:\n%s", logs.String())
	}
	var got []string
	for _, b := range h.batches {
		for _, p := range b.Points {
			if ip, _ := p.TagValue("source_ip"); p.Measurement == verdict.Measurement && ip == "203.0.113.5" {
				v, _ := p.FieldValue("verdict")
				ws, _ := p.FieldValue("window_s")
				n, _ := p.FieldValue("attempts")
				got = append(got, fmt.Sprintf("%d %v %v %v", p.Time.Unix()-start.Unix(), v, ws, n))
			}
		}
	}
	// The minute after the restart judged over two minutes: 240 attempts
	// of the IP before the stop and 120 after.
	if want := []string{"240 1 120 240"}; !slices.Equal(got, want) {
		t.Errorf("after the restart: %q, want %q", got, want)
	}
	if strings.Contains(logs.String(), "verdict ip_specific") {
		t.Errorf("the restart logged a change that did not happen:\n%s", logs.String())
	}

	// A crash after the save: the checkpoint moves on, the saved window
	// stays behind, and is dropped at the next start.
	h.stop() // saves at 4 min
	saved, err := os.ReadFile(filepath.Join(h.state, verdictsFile))
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0002.csv"), poolRecords(start.Add(4*time.Minute), 60, 10, 40))
	h.start()
	h.poll()
	_ = h.tl.Close() // a crash: no shutdown, no save
	if err := os.WriteFile(filepath.Join(h.state, verdictsFile), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	h.start()
	if !strings.Contains(logs.String(), "older than the checkpoint") {
		t.Errorf("a window older than the checkpoint was not dropped:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(h.state, verdictsFile)); !os.IsNotExist(err) {
		t.Errorf("the saved window is still there: %v", err)
	}
}
