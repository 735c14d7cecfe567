package acct

// Adversarial probes of the verdicts in the tailer: hostile source IPs and
// pools, a crash and its replay, a reload's handoff (also onto a corrupt
// checkpoint), the change log, Stats under the race detector, clock jumps,
// the pipeline's boundary and the same verdicts from a backfill.
// TestAdvHeld* show behaviour that held; TestAdvFixed* failed before the
// fix named in them.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// vsend is one source IP's share of verdictRecords: its pool, recipient
// domain and deferral percentage (t records; the rest are d).
type vsend struct {
	ip, pool, domain string
	pct              int
}

// vcount is what verdictRecords wrote for one send.
type vcount struct{ attempts, deferred int64 }

// verdictRecords writes, for secs seconds from start, perSend records a
// second for each send — without a header — and adds what it wrote per
// send index to into.
func verdictRecords(start time.Time, secs, perSend int, sends []vsend, into map[int]*vcount) []byte {
	var b bytes.Buffer
	for s := range secs {
		ts := start.Add(time.Duration(s) * time.Second).Format("2006-01-02 15:04:05-0700")
		for j, snd := range sends {
			c := into[j]
			if c == nil {
				c = &vcount{}
				into[j] = c
			}
			for range perSend {
				typ := "d"
				if c.attempts%100 < int64(snd.pct) {
					typ = "t"
					c.deferred++
				}
				c.attempts++
				b.WriteString(csvLine([]string{typ, ts, ts, "b@em.example", fmt.Sprintf("u%d@%s", c.attempts, snd.domain), "", "relayed",
					"2.0.0", "smtp;250 ok", "mx", "", "smtp", "", "smtp", snd.ip, "198.51.100.7", "", "100",
					"vmta-x", "", "", snd.domain + "/vmta", snd.pool}, true))
			}
		}
	}
	return b.Bytes()
}

// verdictPoints returns the pmta_verdict points of batches, in order.
func verdictPoints(batches []agent.Batch) []agent.Point {
	var out []agent.Point
	for _, b := range batches {
		for _, p := range b.Points {
			if p.Measurement == verdict.Measurement {
				out = append(out, p)
			}
		}
	}
	return out
}

// checkVerdictPoints fails the test for a pmta_verdict point with a tag
// value that is not safe or empty, a field that is not finite, a series
// written twice at one time, or a series whose time goes back.
func checkVerdictPoints(t *testing.T, pts []agent.Point) {
	t.Helper()
	seen := map[string]bool{}
	lastAt := map[string]time.Time{}
	for i := range pts {
		p := &pts[i]
		for _, tg := range p.Tags {
			if tg.Value == "" || !agent.IsSafeTag(tg.Value) {
				t.Fatalf("tag %s=%q is empty or unsafe", tg.Key, tg.Value)
			}
		}
		for _, f := range p.Fields {
			if v, ok := f.Value.(float64); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
				t.Fatalf("%s: %s = %v", pointKey(p), f.Key, v)
			}
		}
		k := pointKey(p)
		if seen[k] {
			t.Fatalf("%s written twice", k)
		}
		seen[k] = true
		series := k[:strings.LastIndexByte(k, '@')]
		if at, ok := lastAt[series]; ok && !p.Time.After(at) {
			t.Fatalf("%s after %v: time went back", k, at)
		}
		lastAt[series] = p.Time
	}
}

// lastRow returns the int64 field of the newest pmta_verdict point whose
// tags hold every one of want.
func lastRow(pts []agent.Point, field string, want ...agent.Tag) (int64, time.Time, bool) {
	for i := len(pts) - 1; i >= 0; i-- {
		p := &pts[i]
		match := true
		for _, w := range want {
			if v, ok := p.TagValue(w.Key); !ok || v != w.Value {
				match = false
			}
		}
		if match {
			v, _ := p.FieldValue(field)
			n, _ := v.(int64)
			return n, p.Time, true
		}
	}
	return 0, time.Time{}, false
}

var fiveIPs = []vsend{
	{"203.0.113.1", "pool-yahoo", "yahoo.com", 2},
	{"203.0.113.2", "pool-yahoo", "yahoo.com", 2},
	{"203.0.113.3", "pool-yahoo", "yahoo.com", 2},
	{"203.0.113.4", "pool-yahoo", "yahoo.com", 2},
	{"203.0.113.5", "pool-yahoo", "yahoo.com", 40},
}

func verdictHarness(t *testing.T, window time.Duration) *harness {
	h := newHarness(t)
	h.verdict = verdict.Config{Enabled: true, Window: window, Every: time.Minute, MinAttempts: 200, WarnPct: 5}
	return h
}

// TestAdvHeldHostileValues: source IPs and pools with control characters,
// invalid UTF-8, 70 KB of text, two long values that share their first
// 300 bytes, no pool at all, a recipient domain of no known ISP: every
// pmta_verdict point's tags are safe and not empty, its fields finite; the
// two long IPs stay two rows; the no-pool group has no pool tag; the log's
// lines carry no control character.
func TestAdvHeldHostileValues(t *testing.T) {
	var logs bytes.Buffer
	h := verdictHarness(t, 5*time.Minute)
	h.log = slog.New(slog.NewTextHandler(&logs, nil))
	long := strings.Repeat("2001:db8::", 30)
	sends := []vsend{
		{"203.0.113.1", "p\x01ool\x7f", "yahoo.com", 2},
		{"203.0.113.2\x00\x1b[31m", "p\x01ool\x7f", "yahoo.com", 2},
		{"\xff\xfe203.0.113.3", "p\x01ool\x7f", "yahoo.com", 2},
		{"203.0.113.4\\", "p\x01ool\x7f", "yahoo.com", 70},
		{long + "a", "", "mail.unknown-isp.example", 2},
		{long + "b", "", "mail.unknown-isp.example", 2},
		{strings.Repeat("x", 70_000), "", "mail.unknown-isp.example", 90},
		{"203.0.113.9", strings.Repeat("P", 5000) + "\n", "gmail.com", 2},
		{"203.0.113.10", strings.Repeat("P", 5000) + "\n", "gmail.com", 2},
	}
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(10 * time.Minute)
	counts := map[int]*vcount{}
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"),
		append([]byte(header23+"\r\n"), verdictRecords(start, 180, 2, sends, counts)...))
	h.start()
	h.poll()
	pts := verdictPoints(h.batches)
	if len(pts) == 0 {
		t.Fatal("no pmta_verdict points")
	}
	checkVerdictPoints(t, pts)
	ips := map[string]bool{}
	noPool := false
	for i := range pts {
		p := &pts[i]
		if ip, ok := p.TagValue("source_ip"); ok {
			ips[ip] = true
		}
		if isp, _ := p.TagValue("isp"); isp == "other" {
			if _, ok := p.TagValue("pool"); !ok {
				noPool = true
			}
		}
	}
	if len(ips) != len(sends) {
		t.Fatalf("%d distinct source IPs in the points, want %d", len(ips), len(sends))
	}
	if !noPool {
		t.Fatal("no group of ISP other without a pool")
	}
	if v, _, ok := lastRow(pts, "verdict", agent.Tag{Key: "source_ip", Value: agent.SafeTag("203.0.113.4\\")}); !ok || v != int64(verdict.IPSpecific) {
		t.Fatalf("the IP at 70 %%: verdict %d (found %v), want ip_specific", v, ok)
	}
	for _, c := range logs.String() {
		if c < 0x20 && c != '\n' {
			t.Fatalf("a control character %q in the log:\n%q", c, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "verdict ip_specific") {
		t.Fatalf("no ip_specific line:\n%s", logs.String())
	}
}

// TestAdvHeldCrashReplay: batches with verdicts are never confirmed and the
// tailer dies. The restart replays them without a pmta_verdict point (and
// with the very same pmta_acct points), its window observes the replayed
// intervals once, and the cuts after the replay emit verdicts again over
// a window that holds the replayed minutes.
func TestAdvHeldCrashReplay(t *testing.T) {
	h := verdictHarness(t, 15*time.Minute)
	h.ackBatches = false
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, append([]byte(header23+"\r\n"), verdictRecords(start, 180, 1, fiveIPs, counts)...))
	h.now = start.Add(10 * time.Minute)
	h.start()
	h.poll()
	first := h.batches
	if len(verdictPoints(first)) == 0 {
		t.Fatal("no verdicts before the crash")
	}
	_ = h.tl.Close() // the crash: no Done, no shutdown

	h.batches = nil
	h.ackBatches = true
	h.start()
	h.poll()
	if len(h.batches) < len(first) {
		t.Fatalf("%d batches replayed, want %d", len(h.batches), len(first))
	}
	if pts := verdictPoints(h.batches); len(pts) != 0 {
		t.Fatalf("the replay emitted %d pmta_verdict points", len(pts))
	}
	for i := range first {
		var want []agent.Point
		for _, p := range first[i].Points {
			if p.Measurement != verdict.Measurement {
				want = append(want, p)
			}
		}
		if a, b := sortedLP(want), sortedLP(h.batches[i].Points); a != b {
			t.Fatalf("replayed batch %d differs beyond its verdicts", i)
		}
	}
	if n := h.stat("verdict_points"); n != 0 {
		t.Fatalf("verdict_points = %d after a replay alone", n)
	}

	// Three more minutes after the replay: verdicts again, over the six.
	h.batches = nil
	appendFile(t, f, verdictRecords(start.Add(3*time.Minute), 180, 1, fiveIPs, counts))
	h.now = start.Add(20 * time.Minute)
	h.poll()
	pts := verdictPoints(h.batches)
	checkVerdictPoints(t, pts)
	got, at, ok := lastRow(pts, "attempts", agent.Tag{Key: "source_ip", Value: "203.0.113.5"})
	ws, _, _ := lastRow(pts, "window_s", agent.Tag{Key: "source_ip", Value: "203.0.113.5"})
	if !ok || at.Unix() != start.Add(6*time.Minute).Unix() || got != counts[4].attempts || ws != 360 {
		t.Fatalf("after the replay: %d attempts over %d s at %v, want %d over 360 s at %v",
			got, ws, at, counts[4].attempts, start.Add(6*time.Minute))
	}
	if n := h.stat("verdict_points"); n != int64(len(pts)) {
		t.Fatalf("verdict_points = %d, want the %d emitted after the replay", n, len(pts))
	}
}

// TestAdvHeldReloadHandoff: a reload in the middle of a step, with open
// intervals in the checkpoint: the new tailer takes the window on and every
// record is in the window once — the last IP row counts exactly what was
// written, and no verdict series is written twice at one time.
func TestAdvHeldReloadHandoff(t *testing.T) {
	h := verdictHarness(t, 15*time.Minute)
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, append([]byte(header23+"\r\n"), verdictRecords(start, 150, 1, fiveIPs, counts)...))
	// The clock at 1:45 into the records: up to 1:40 closed, 1:40–2:30
	// open, the step of minute 1 half observed.
	h.now = start.Add(105 * time.Second)
	h.start()
	h.poll()
	if h.stat("records_open") == 0 {
		t.Fatal("the test meant to leave intervals open at the reload")
	}
	var all []agent.Batch
	all = append(all, h.batches...)
	w := h.tl.VerdictWindow()
	h.stop()
	h.window = w
	h.batches = nil
	h.start()
	appendFile(t, f, verdictRecords(start.Add(150*time.Second), 150, 1, fiveIPs, counts))
	h.now = start.Add(20 * time.Minute)
	h.poll()
	all = append(all, h.batches...)
	pts := verdictPoints(all)
	checkVerdictPoints(t, pts)
	for j, snd := range fiveIPs {
		got, at, _ := lastRow(pts, "attempts", agent.Tag{Key: "source_ip", Value: snd.ip})
		def, _, _ := lastRow(pts, "deferred", agent.Tag{Key: "source_ip", Value: snd.ip})
		if at.Unix() != start.Add(5*time.Minute).Unix() || got != counts[j].attempts || def != counts[j].deferred {
			t.Fatalf("%s at %v: %d attempts, %d deferred; written %d and %d", snd.ip, at, got, def, counts[j].attempts, counts[j].deferred)
		}
	}
	if h.tl.VerdictWindow() != w {
		t.Fatal("the window was not taken on")
	}
}

// TestAdvFixedReloadOntoCorruptCheckpoint: a reload whose new tailer finds
// the checkpoint corrupt starts afresh and reads the files from the
// beginning, with the window it took on. The window judged those minutes a
// second time: the IP rows counted every record twice and verdict series
// went back in time. The window now leaves out intervals before its current
// step (verdict.Window.Observe).
func TestAdvFixedReloadOntoCorruptCheckpoint(t *testing.T) {
	h := verdictHarness(t, 15*time.Minute)
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, append([]byte(header23+"\r\n"), verdictRecords(start, 180, 1, fiveIPs, counts)...))
	h.now = start.Add(10 * time.Minute)
	h.start()
	h.poll()
	all := slices.Clone(h.batches)
	w := h.tl.VerdictWindow()
	h.stop()
	if err := os.WriteFile(filepath.Join(h.state, checkpointName), []byte(`{"version":1,"snap`), 0o644); err != nil {
		t.Fatal(err)
	}
	h.window = w
	h.batches = nil
	h.start()
	appendFile(t, f, verdictRecords(start.Add(3*time.Minute), 120, 1, fiveIPs, counts))
	h.now = start.Add(20 * time.Minute)
	h.poll()
	if h.stat("checkpoint_corrupt") != 1 {
		t.Fatal("the checkpoint was not taken for corrupt")
	}
	all = append(all, h.batches...)
	pts := verdictPoints(all)
	checkVerdictPoints(t, pts)
	got, at, _ := lastRow(pts, "attempts", agent.Tag{Key: "source_ip", Value: "203.0.113.5"})
	if at.Unix() != start.Add(5*time.Minute).Unix() || got != counts[4].attempts {
		t.Fatalf("at %v: %d attempts, written %d", at, got, counts[4].attempts)
	}
}

// TestAdvFixedChangeCapHidesAlarms: the changes kept for the log between
// two reads were capped at 1,000 whatever they were, and most changes are
// never logged (the IPs of a pool turning pool_wide). A pool of 1,200 IPs
// turning pool_wide at one ISP filled the cap, and the pool_wide line of
// another ISP's pool, sorted after it, was never written. Only the changes
// that are logged are kept now.
func TestAdvFixedChangeCapHidesAlarms(t *testing.T) {
	agg := newAggregator(time.Minute, 5, agent.NewISPMap(nil))
	agg.verdicts = verdict.NewWindow(verdict.DefaultConfig())
	var entries []aggEntry
	for i := range 1200 {
		entries = append(entries, aggEntry{key: aggKey{typ: typeT, isp: "aol", pool: "big", sourceIP: fmt.Sprintf("10.0.%d.%d", i/256, i%256)},
			aggVal: aggVal{count: 300}})
	}
	for i := range 3 {
		entries = append(entries, aggEntry{key: aggKey{typ: typeT, isp: "yahoo", pool: "py", sourceIP: fmt.Sprintf("10.1.0.%d", i)},
			aggVal: aggVal{count: 300}})
	}
	pts := agg.appendVerdicts(nil, 0, entries)
	if len(pts) != 1200+3+2 {
		t.Fatalf("%d points", len(pts))
	}
	var logs bytes.Buffer
	tl := &Tailer{log: slog.New(slog.NewTextHandler(&logs, nil))}
	tl.logVerdicts(agg.takeChanges())
	out := logs.String()
	if strings.Count(out, "verdict pool_wide") != 2 || !strings.Contains(out, "isp=yahoo") {
		t.Fatalf("want a pool_wide line for each ISP's pool:\n%.2000s", out)
	}
}

// TestAdvHeldLogOncePerChange: ten minutes of one IP far above its pool
// and of a throttled pool write one line for the IP and one for the pool —
// none for the pool's IPs, none again while nothing changes — and one line
// each when it is over.
func TestAdvHeldLogOncePerChange(t *testing.T) {
	var logs bytes.Buffer
	h := verdictHarness(t, 3*time.Minute)
	h.log = slog.New(slog.NewTextHandler(&logs, nil))
	sends := append(slices.Clone(fiveIPs),
		vsend{"198.51.100.1", "pool-google", "gmail.com", 30},
		vsend{"198.51.100.2", "pool-google", "gmail.com", 30},
		vsend{"198.51.100.3", "pool-google", "gmail.com", 30})
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, []byte(header23+"\r\n"))
	h.start()
	for m := range 10 { // a poll a minute
		appendFile(t, f, verdictRecords(start.Add(time.Duration(m)*time.Minute), 60, 4, sends, counts))
		h.now = start.Add(time.Duration(m+1)*time.Minute + 5*time.Second)
		h.poll()
	}
	out := logs.String()
	if n := strings.Count(out, "verdict ip_specific:"); n != 1 || !strings.Contains(out, "source_ip=203.0.113.5") {
		t.Fatalf("%d ip_specific lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "verdict pool_wide:"); n != 1 || !strings.Contains(out, "pool=pool-google") {
		t.Fatalf("%d pool_wide lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d lines, want 2:\n%s", n, out)
	}
	// All healthy for four minutes: both over, once.
	logs.Reset()
	for i := range sends {
		sends[i].pct = 1
	}
	for m := 10; m < 14; m++ {
		appendFile(t, f, verdictRecords(start.Add(time.Duration(m)*time.Minute), 60, 4, sends, counts))
		h.now = start.Add(time.Duration(m+1)*time.Minute + 5*time.Second)
		h.poll()
	}
	out = logs.String()
	if strings.Count(out, "verdict ip_specific over") != 1 || strings.Count(out, "verdict pool_wide over") != 1 || strings.Count(out, "\n") != 2 {
		t.Fatalf("want one line each for the IP and the pool being over:\n%s", out)
	}
	checkVerdictPoints(t, verdictPoints(h.batches))
}

// TestAdvHeldStatsUnderRace: Stats is read from another goroutine while the
// tailer reads, closes intervals and judges (go test -race).
func TestAdvHeldStatsUnderRace(t *testing.T) {
	h := verdictHarness(t, 3*time.Minute)
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, []byte(header23+"\r\n"))
	h.now = start
	h.start()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, fl := range h.tl.Stats() {
				_ = fl.Value
			}
		}
	})
	for m := range 6 {
		appendFile(t, f, verdictRecords(start.Add(time.Duration(m)*time.Minute), 60, 4, fiveIPs, counts))
		h.now = start.Add(time.Duration(m+1)*time.Minute + 5*time.Second)
		if err := h.tl.PollOnce(context.Background()); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if h.stat("verdict_points") == 0 || h.stat("verdict_ip_specific") != 2 {
		t.Fatalf("verdict_points %d, verdict_ip_specific %d", h.stat("verdict_points"), h.stat("verdict_ip_specific"))
	}
}

// TestAdvHeldClockJumps: the host's clock jumps 20 minutes ahead for two
// polls (PowerMTA logging at those times) and back: verdict series never go
// back in time nor are written twice, every field is finite, and the
// attempts judged never exceed those written.
func TestAdvHeldClockJumps(t *testing.T) {
	h := verdictHarness(t, 15*time.Minute)
	start := testStart.Truncate(time.Minute)
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	counts := map[int]*vcount{}
	appendFile(t, f, []byte(header23+"\r\n"))
	h.start()
	clock := start
	for m := range 12 {
		if m == 4 {
			clock = clock.Add(20 * time.Minute) // forward
		}
		if m == 6 {
			clock = clock.Add(-20 * time.Minute) // and back
		}
		appendFile(t, f, verdictRecords(clock, 60, 1, fiveIPs, counts))
		clock = clock.Add(time.Minute)
		h.now = clock.Add(5 * time.Second)
		h.poll()
	}
	h.now = clock.Add(time.Hour)
	h.poll()
	pts := verdictPoints(h.batches)
	checkVerdictPoints(t, pts)
	for i := range pts {
		if ip, _ := pts[i].TagValue("source_ip"); ip == "203.0.113.5" {
			if v, _ := pts[i].FieldValue("attempts"); v.(int64) > counts[4].attempts {
				t.Fatalf("%d attempts judged, %d written", v, counts[4].attempts)
			}
		}
	}
}

// TestAdvHeldPipelineBoundary: the pipeline with caps far below the
// verdicts' pools and source IPs folds the pmta_acct points, never a
// pmta_verdict point: each comes out with its own tags (and the server),
// its fields untouched, none merged, none sanitized.
func TestAdvHeldPipelineBoundary(t *testing.T) {
	h := verdictHarness(t, 5*time.Minute)
	var sends []vsend
	for i := range 12 {
		sends = append(sends, vsend{fmt.Sprintf("203.0.113.%d\x01", i), fmt.Sprintf("pool-%d\xff", i%4), "yahoo.com", 2 + 40*(i%2)})
	}
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(10 * time.Minute)
	counts := map[int]*vcount{}
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"),
		append([]byte(header23+"\r\n"), verdictRecords(start, 120, 2, sends, counts)...))
	h.start()
	h.poll()
	var in []agent.Point
	for _, b := range h.batches {
		in = append(in, b.Points...)
	}
	before := verdictPoints(h.batches)
	pl := engine.NewPipeline(engine.PipelineConfig{MaxDomains: 1, MaxVMTAs: 1, MaxPools: 1, MaxSourceIPs: 2, MaxBounceCats: 1, MaxDiags: 1,
		Server: "mta1", Tags: map[string]string{"dc": "fra", "scope": "static"}, ISP: agent.NewISPMap(nil)})
	out := pl.Process(in)
	var after []agent.Point
	for _, p := range out {
		if p.Measurement == verdict.Measurement {
			after = append(after, p)
		}
	}
	if len(after) != len(before) || len(before) == 0 {
		t.Fatalf("%d verdict points in, %d out", len(before), len(after))
	}
	for i := range before {
		b, a := before[i], after[i]
		want := append(slices.Clone(b.Tags), agent.Tag{Key: "dc", Value: "fra"}, agent.Tag{Key: "server", Value: "mta1"})
		slices.SortFunc(want, agent.CompareTags)
		got := slices.Clone(a.Tags)
		slices.SortFunc(got, agent.CompareTags)
		if !slices.Equal(got, want) || !slices.Equal(a.Fields, b.Fields) || !a.Time.Equal(b.Time) {
			t.Fatalf("the pipeline changed a verdict point:\n in %v\nout %v", b, a)
		}
	}
	stats := map[string]int64{}
	for _, f := range pl.Stats() {
		stats[f.Key], _ = f.Value.(int64)
	}
	if stats["pools_folded"] == 0 || stats["source_ips_folded"] == 0 {
		t.Fatalf("the caps meant to fold the pmta_acct points: %v", stats)
	}
	checkVerdictPoints(t, after)
	// A batch of verdicts alone: nothing sanitized, nothing merged.
	pl2 := engine.NewPipeline(engine.PipelineConfig{MaxPools: 1, MaxSourceIPs: 1, Server: "mta1", ISP: agent.NewISPMap(nil)})
	if got := pl2.Process(before); len(got) != len(before) {
		t.Fatalf("%d of %d verdict points came out", len(got), len(before))
	}
	for _, f := range pl2.Stats() {
		if v, _ := f.Value.(int64); v != 0 && f.Key != "batches" && f.Key != "points" {
			t.Fatalf("verdicts alone: %s = %d", f.Key, v)
		}
	}
}

// TestAdvHeldBackfillSameVerdicts: a backfill of the files the tailer read
// gives the very same pmta_verdict points, in the same order; and a second
// backfill the same again (determinism).
func TestAdvHeldBackfillSameVerdicts(t *testing.T) {
	h := verdictHarness(t, 5*time.Minute)
	sends := append(slices.Clone(fiveIPs), vsend{"198.51.100.1", "", "gmail.com", 30}, vsend{"198.51.100.2", "", "gmail.com", 30})
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(30 * time.Minute)
	counts := map[int]*vcount{}
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	appendFile(t, f, append([]byte(header23+"\r\n"), verdictRecords(start, 600, 1, sends, counts)...))
	h.start()
	h.poll()
	want := agent.LineProtocol(verdictPoints(h.batches))
	backfill := func() []byte {
		var batches []agent.Batch
		opts := BackfillOptions{Config: Config{Verdict: h.verdict}, Logger: discardLogger()}
		if _, err := Backfill(context.Background(), []string{f}, opts, agent.NewISPMap(nil), func(b agent.Batch) { batches = append(batches, b) }, nil); err != nil {
			t.Fatal(err)
		}
		return agent.LineProtocol(verdictPoints(batches))
	}
	got := backfill()
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("backfill's verdicts differ from the tailer's:\n--- tailer\n%.3000s\n--- backfill\n%.3000s", want, got)
	}
	if again := backfill(); !bytes.Equal(again, got) {
		t.Fatal("two backfills gave other verdicts")
	}
}

// TestAdvHeldManyIPs: 25,000 source IPs in one minute (beyond
// verdict.MaxKeys): the window holds 20,000 keys, the rest's attempts are
// counted in verdict_dropped_attempts, the points stay finite.
func TestAdvHeldManyIPs(t *testing.T) {
	h := verdictHarness(t, 5*time.Minute)
	var sends []vsend
	for i := range verdict.MaxKeys + 5000 {
		sends = append(sends, vsend{fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "p", "yahoo.com", 0})
	}
	start := testStart.Truncate(time.Minute)
	h.now = start.Add(10 * time.Minute)
	counts := map[int]*vcount{}
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	appendFile(t, f, append([]byte(header23+"\r\n"), verdictRecords(start, 1, 1, sends, counts)...))
	// A record in the step's last interval completes it.
	appendFile(t, f, verdictRecords(start.Add(55*time.Second), 1, 1, sends[:1], map[int]*vcount{}))
	h.start()
	h.poll()
	if got := h.stat("verdict_dropped_attempts"); got != 5000 {
		t.Fatalf("verdict_dropped_attempts = %d, want 5000", got)
	}
	pts := verdictPoints(h.batches)
	if len(pts) != verdict.MaxKeys+1 {
		t.Fatalf("%d points, want %d IPs and their pool", len(pts), verdict.MaxKeys)
	}
	checkVerdictPoints(t, pts)
}

// TestAdvHeldChangeOverflowCounted: more changes to log than maxChanges at
// once (1,100 pools each with one IP turning ip_specific) are kept up to
// the bound and the rest said in one line, not dropped unsaid.
func TestAdvHeldChangeOverflowCounted(t *testing.T) {
	agg := newAggregator(time.Minute, 5, agent.NewISPMap(nil))
	agg.verdicts = verdict.NewWindow(verdict.DefaultConfig())
	var entries []aggEntry
	for g := range 1100 {
		pool := fmt.Sprintf("p%04d", g)
		for i := range 4 {
			typ := typeD
			if i == 3 {
				typ = typeT
			}
			entries = append(entries, aggEntry{key: aggKey{typ: typ, isp: "yahoo", pool: pool, sourceIP: fmt.Sprint("10.0.0.", i)}, aggVal: aggVal{count: 1000}})
		}
	}
	agg.appendVerdicts(nil, 0, entries)
	var logs bytes.Buffer
	tl := &Tailer{log: slog.New(slog.NewTextHandler(&logs, nil))}
	tl.logVerdicts(agg.takeChanges())
	out := logs.String()
	if n := strings.Count(out, "verdict ip_specific:"); n != maxChanges || !strings.Contains(out, "not_logged=100") {
		t.Fatalf("%d ip_specific lines, want %d and one line for the 100 more", n, maxChanges)
	}
	if ch, over := agg.takeChanges(); len(ch) != 0 || over != 0 {
		t.Fatal("takeChanges did not start over")
	}
}
