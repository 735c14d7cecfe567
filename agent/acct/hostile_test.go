package acct

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Tests for input that strangers and careless operators control: times,
// quotes, links, unreadable paths. Each one failed on the agent before the
// hostile-input work.

// checkReconciles asserts the equation Stats documents.
func (h *harness) checkReconciles() {
	h.t.Helper()
	in := h.stat("records_read") + h.stat("records_restored")
	out := h.stat("records_emitted") + h.stat("records_open") + h.stat("malformed") + h.stat("out_of_range")
	if in != out {
		h.t.Fatalf("records_read+restored = %d, emitted+open+malformed+out_of_range = %d", in, out)
	}
}

// tsLine is a minimal d record of the 23-column header logged at ts.
func tsLine(ts string, domain string) string {
	f := make([]string, 23)
	f[0], f[1], f[4], f[21] = "d", ts, "u@"+domain, domain+"/vmta-1"
	return csvLine(f, true)
}

// With a 1 s interval: 10 records now, 400 a day ahead, then 50 now. The
// 400 must not close the intervals up to tomorrow (which made the 50 late
// and never emitted, and after a restart every new record late): they are
// out of range, counted, and the 60 others are emitted at their own times —
// also after a restart.
func TestTailerFutureRecordsDoNotStall(t *testing.T) {
	h := newHarness(t)
	h.interval = time.Second
	now := h.now
	var b strings.Builder
	b.WriteString(header23 + "\r\n")
	for i := range 10 {
		b.WriteString(tsLine(now.Add(time.Duration(i-70)*time.Second).Format("2006-01-02 15:04:05-0700"), "gmail.com"))
	}
	for range 400 {
		b.WriteString(tsLine(now.Add(24*time.Hour).Format("2006-01-02 15:04:05-0700"), "future.example"))
	}
	for i := range 50 {
		b.WriteString(tsLine(now.Add(time.Duration(i-60)*time.Second).Format("2006-01-02 15:04:05-0700"), "yahoo.com"))
	}
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	appendFile(t, f0, []byte(b.String()))
	h.start()
	h.poll()
	h.now = h.now.Add(5 * time.Second)
	h.poll()
	if got := sumCount(t, h.db.points()); got != 60 {
		t.Errorf("emitted %d records, want 60", got)
	}
	if n := h.stat("out_of_range_future"); n != 400 {
		t.Errorf("out_of_range_future = %d, want 400", n)
	}
	if n := h.stat("late"); n != 0 {
		t.Errorf("late = %d, want 0", n)
	}
	h.checkReconciles()

	// A restart, then records at the (new) present: counted, not late.
	h.stop()
	h.now = h.now.Add(time.Minute)
	h.start()
	appendFile(t, f0, []byte(tsLine(h.now.Add(-3*time.Second).Format("2006-01-02 15:04:05-0700"), "aol.com")))
	h.poll()
	h.now = h.now.Add(5 * time.Second)
	h.poll()
	if got := sumCount(t, h.db.points()); got != 61 {
		t.Errorf("after a restart: emitted %d records, want 61", got)
	}
	if n := h.stat("late"); n != 0 {
		t.Errorf("after a restart: late = %d, want 0", n)
	}
}

// Times outside 1678–2262 used to wrap into plausible dates (year 1000 →
// 2169); anything before 1990 or after 2200 is out of range, and so are
// records older than max_age while tailing.
func TestTailerImplausibleTimes(t *testing.T) {
	h := newHarness(t)
	h.maxAge = 24 * time.Hour
	var b strings.Builder
	b.WriteString(header23 + "\r\n")
	for _, ts := range []string{"1000-01-01 00:00:00+0000", "9999-12-31 23:59:59+0000", "1985-06-01 12:00:00+0000", "2201-01-01 00:00:00+0000"} {
		b.WriteString(tsLine(ts, "wrap.example"))
	}
	b.WriteString(tsLine(h.now.Add(-48*time.Hour).Format("2006-01-02 15:04:05-0700"), "old.example"))
	b.WriteString(tsLine(h.now.Add(-30*time.Second).Format("2006-01-02 15:04:05-0700"), "gmail.com"))
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), []byte(b.String()))
	h.start()
	h.poll()
	h.now = h.now.Add(time.Minute)
	h.poll()
	for _, p := range h.db.points() {
		if y := p.Time.Year(); y != h.now.Year() {
			t.Errorf("point dated %s", p.Time)
		}
	}
	if got := sumCount(t, h.db.points()); got != 1 {
		t.Errorf("emitted %d records, want 1", got)
	}
	if inv, old := h.stat("out_of_range_invalid"), h.stat("out_of_range_old"); inv != 4 || old != 1 {
		t.Errorf("out_of_range_invalid %d (want 4), out_of_range_old %d (want 1)", inv, old)
	}
	h.checkReconciles()
}

// tail_lag_s followed the newest record's time: one far-future record
// pinned it at 0 for the life of the process. It is the age of the oldest
// unread data now: during a catch-up of a two-hour backlog the first batches
// see about two hours, whatever a future record says; caught up, it is 0.
func TestTailerLagFromUnreadData(t *testing.T) {
	h := newHarness(t)
	h.now = testStart.Add(3 * time.Hour)
	future := tsLine(h.now.Add(time.Hour).Format("2006-01-02 15:04:05-0700"), "future.example")
	data, _ := records(1, 3600, testStart.Add(time.Hour)) // one a second, from two hours to one hour before now
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), []byte(header23+"\r\n"+future+string(data)))
	h.start()
	var lags []float64
	h.tl.SetEmit(func(b agent.Batch) {
		for _, f := range h.tl.Stats() {
			if f.Key == "tail_lag_s" {
				lags = append(lags, f.Value.(float64))
			}
		}
		h.db.write(b.Points)
		b.Done()
	})
	h.poll()
	if len(lags) < 2 || lags[0] < 1.9*3600 || lags[0] > 2.1*3600 || lags[len(lags)-1] > 1.1*3600 {
		t.Fatalf("tail_lag_s during the catch-up: first %v, last %v; want about 2 h at first, 1 h at the end",
			lags[:min(len(lags), 5)], lags[len(lags)-1])
	}
	last := h.tl.Stats()
	for _, f := range last {
		if f.Key == "tail_lag_s" && f.Value.(float64) != 0 {
			t.Errorf("caught up: tail_lag_s = %v, want 0", f.Value)
		}
	}
	if n := h.stat("out_of_range_future"); n != 1 {
		t.Errorf("out_of_range_future = %d, want 1 (an hour ahead is beyond the 5 min skew)", n)
	}
}

// A symbolic link or a hard link to a watched file counted every record
// twice: a file is its device and inode.
func TestTailerLinkedFileReadOnce(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 100, testStart)
	appendFile(t, f0, append([]byte(header23+"\r\n"), data...))
	if err := os.Symlink(f0, filepath.Join(h.dirA, "acct-link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(f0, filepath.Join(h.dirB, "acct-hard.csv")); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.poll()
	more, recs2 := records(2, 50, testStart.Add(200*time.Second))
	appendFile(t, f0, more)
	h.poll()
	if n := h.stat("files_open"); n != 1 {
		t.Errorf("files_open = %d, want 1", n)
	}
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), append(recs, recs2...))
}

// An unreadable directory or file of the globs yielded nothing at all: no
// log line, /readyz ready. It is a problem now, with its path. (Tests run as
// root, which reads anything; a file where the directory should be and a
// symbolic link loop stand in for permissions.)
func TestUnreadableGlobsAreProblems(t *testing.T) {
	base := t.TempDir()
	notDir := filepath.Join(base, "notdir")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	loopDir := filepath.Join(base, "loop")
	if err := os.Mkdir(loopDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("acct-b.csv", filepath.Join(loopDir, "acct-a.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("acct-a.csv", filepath.Join(loopDir, "acct-b.csv")); err != nil {
		t.Fatal(err)
	}
	// A FIFO matched by mistake must not block CheckFiles (an open would).
	if err := syscall.Mkfifo(filepath.Join(loopDir, "acct-fifo.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	globs := []string{filepath.Join(notDir, "acct-*.csv"), filepath.Join(base, "missing", "acct-*.csv"), filepath.Join(loopDir, "acct-*.csv")}
	want := []string{"cannot read directory " + notDir, "directory " + filepath.Join(base, "missing") + " does not exist",
		"cannot read " + filepath.Join(loopDir, "acct-a.csv")}

	probs := CheckFiles(globs)
	for _, w := range want {
		if !containsSub(probs, w) {
			t.Errorf("CheckFiles: no problem saying %q in %q", w, probs)
		}
	}
	tl, err := NewTailer(Config{Globs: globs, StateDir: t.TempDir(), StartAt: "beginning"}, agent.NewISPMap(nil), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	tl.SetEmit(func(agent.Batch) {})
	_ = tl.PollOnce(context.Background())
	for _, w := range want {
		if !containsSub(tl.Problems(), w) {
			t.Errorf("Problems: none saying %q in %q", w, tl.Problems())
		}
	}
}

func containsSub(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// The same file given twice to backfill was counted twice.
func TestBackfillRefusesTheSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "acct.csv")
	data, _ := records(1, 5, testStart)
	if err := os.WriteFile(path, append([]byte(header23+"\r\n"), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, filepath.Join(dir, "hard.csv")); err != nil {
		t.Fatal(err)
	}
	for _, second := range []string{path, filepath.Join(dir, "hard.csv")} {
		emitted := 0
		_, err := Backfill(context.Background(), []string{path, second}, BackfillOptions{}, agent.NewISPMap(nil),
			func(agent.Batch) { emitted++ }, nil)
		if err == nil || !strings.Contains(err.Error(), "same file") || emitted != 0 {
			t.Errorf("%s twice: err %v, %d batches; want a refusal before reading", second, err, emitted)
		}
	}
}

// A file that ends in a line not finished yet — PowerMTA writing it, or
// killed in the middle of it — is not lagging: tail_lag_s stays 0 and
// /readyz stays ready.
func TestTailerPartialLastLineIsNoLag(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 30, testStart)
	appendFile(t, f0, []byte(header23+"\r\n"))
	h.start()
	for i, line := range strings.SplitAfter(string(data), "\r\n") {
		if line == "" {
			continue
		}
		// The rest of the previous line, and the first 10 bytes of this one.
		appendFile(t, f0, []byte(line[:10]))
		h.poll()
		appendFile(t, f0, []byte(line[10:]))
		h.now = h.now.Add(time.Second)
		if i%10 == 9 {
			h.poll()
		}
	}
	appendFile(t, f0, []byte("d,2024-01-15 1")) // killed in the middle of a line
	h.now = h.now.Add(20 * time.Minute)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	for _, f := range h.tl.Stats() {
		if (f.Key == "tail_lag_s" && f.Value.(float64) != 0) || (f.Key == "tail_lag_bytes" && f.Value.(int64) != 0) {
			t.Errorf("%s = %v with nothing but a partial last line unread", f.Key, f.Value)
		}
	}
}

// A clock stepped back (NTP) while the agent runs keeps the intervals it
// closed: records for them count as late, in the oldest open interval, and
// no interval is emitted twice (a second point would overwrite the first).
func TestTailerClockSteppedBackLosesNothing(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	real := h.now
	ahead := real.Add(time.Hour)
	lines := func(n int, from time.Time, step time.Duration, domain string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(tsLine(from.Add(time.Duration(i)*step).Format("2006-01-02 15:04:05-0700"), domain))
		}
		return b.String()
	}
	// The clock runs an hour ahead while 60 records are written.
	appendFile(t, f0, []byte(header23+"\r\n"+lines(60, ahead.Add(-90*time.Second), time.Second, "gmail.com")))
	h.now = ahead
	h.start()
	h.poll()
	// It is stepped back, across a restart of the agent, ...
	h.now = real
	h.poll()
	h.stop()
	h.start()
	h.poll()
	// ... and catches up; 400 records for the times already emitted come.
	h.now = ahead.Add(time.Minute)
	appendFile(t, f0, []byte(lines(400, ahead.Add(-90*time.Second), 150*time.Millisecond, "gmail.com")))
	h.poll()
	h.now = h.now.Add(time.Minute)
	h.poll()
	if got := sumCount(t, h.db.points()); got != 460 {
		t.Errorf("the store holds %d records, want all 460", got)
	}
}

// A file that cannot be opened for a while (a permission fixed later) is
// kept, not forgotten: readable again, it goes on where it stood instead of
// being read again from the start.
func TestTailerUnreadableForAWhileIsNotReadTwice(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 10, testStart)
	appendFile(t, f0, append([]byte(header23+"\r\n"), data...))
	h.start()
	h.poll()
	h.now = h.now.Add(10 * time.Minute) // idle: its descriptor is closed
	h.poll()
	more, recs2 := records(2, 5, testStart.Add(time.Minute))
	appendFile(t, f0, more)
	h.tl.files.open = func(name string) (*os.File, error) {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrPermission}
	}
	for range 5 {
		if err := h.tl.PollOnce(context.Background()); err == nil {
			t.Fatal("no error for an unreadable file")
		}
	}
	if len(h.tl.Problems()) == 0 {
		t.Error("an unreadable file is no problem")
	}
	h.tl.files.open = os.Open
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), append(recs, recs2...))
	h.checkReconciles()
}

// A checkpoint of an agent from before the time checks may have closed the
// intervals up to a record dated a day ahead, which made every later record
// late, also after restarts. It is repaired once at start.
func TestTailerRepairsLegacyFutureCheckpoint(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	appendFile(t, f0, []byte(header23+"\r\n"))
	h.start()
	h.poll()
	h.stop()
	path := filepath.Join(h.state, checkpointName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cf checkpointFile
	var snap snapshot
	if err := json.Unmarshal(raw, &cf); err != nil || json.Unmarshal(cf.Snapshot, &snap) != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	snap.Agg.ClosedUpTo, snap.Agg.ClosedSet = h.now.Add(24*time.Hour).Unix()/10*10, true
	cf.Snapshot, _ = json.Marshal(snap)
	cf.TimesChecked = false // as an older agent wrote it
	raw, _ = json.Marshal(cf)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	data, recs := records(1, 20, h.now)
	appendFile(t, f0, data)
	h.poll()
	h.now = h.now.Add(time.Minute)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), recs)
	if n := h.stat("late"); n != 0 {
		t.Errorf("late = %d after the repair, want 0", n)
	}
}

// A move-to on another file system is a copy (a new inode) and a delete. The
// copy is the same file: counted once, whatever the tailer sees in between
// (a part of the copy, both whole).
func TestTailerMoveToAnotherFileSystem(t *testing.T) {
	h := newHarness(t)
	f0 := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, recs := records(1, 40, testStart)
	body := append([]byte(header23+"\r\n"), data...)
	appendFile(t, f0, body[:len(body)-300]) // not all read before the move
	h.start()
	h.poll()
	appendFile(t, f0, body[len(body)-300:])
	moved := filepath.Join(h.dirB, "acct-2024-01-15-0000.csv")
	appendFile(t, moved, body[:500]) // the copy, in progress
	h.poll()
	appendFile(t, moved, body[500:]) // copied whole, the original still there
	h.poll()
	if err := os.Remove(f0); err != nil { // and deleted
		t.Fatal(err)
	}
	for range 4 {
		h.poll()
	}
	more, recs2 := records(2, 10, testStart.Add(time.Minute))
	appendFile(t, moved, more)
	h.now = h.now.Add(time.Hour)
	h.poll()
	checkTotals(t, tallyPoints(t, h.db.points()), append(recs, recs2...))
	h.checkReconciles()
}
