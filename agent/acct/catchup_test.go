package acct

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// backlogFiles writes two hours of records logged from testStart on into
// dirA: acct-*.csv with one record a second, diag-*.csv with a t record
// every two seconds, as PowerMTA's two files hold for the same times. It
// returns the records and how many each interval of iv seconds holds.
func backlogFiles(t *testing.T, h *harness, iv int64) ([]genRecord, map[int64]int64) {
	t.Helper()
	const span = 2 * 3600
	perIv := map[int64]int64{}
	var written []genRecord
	r := rand.New(rand.NewPCG(7, 1))
	var acct, diag bytes.Buffer
	acct.WriteString(header23 + "\r\n")
	diag.WriteString(header23 + "\r\n")
	for i := range span {
		ts := testStart.Add(time.Duration(i) * time.Second)
		rec := genLine(r, i, ts, true)
		acct.WriteString(rec.line)
		written = append(written, rec)
		perIv[floorDiv(ts.Unix(), iv)*iv]++
		if i%2 != 0 {
			continue
		}
		for rec.typ != "t" {
			rec = genLine(r, i, ts, true)
		}
		diag.WriteString(rec.line)
		written = append(written, rec)
		perIv[floorDiv(ts.Unix(), iv)*iv]++
	}
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), acct.Bytes())
	appendFile(t, filepath.Join(h.dirA, "diag-2024-01-15-0000.csv"), diag.Bytes())
	return written, perIv
}

// maxOpenBound is how many 10 s intervals a catch-up may hold open: a
// window of records (readWindow), the interval of slack behind it and the
// next window.
const maxOpenBound = 2*readWindow/10 + 2

// TestTailerCatchUpSideBySide starts the tailer on two hours of acct and
// diag records for the same times: it must read them side by side, so that
// no record is late, every interval holds exactly its own records, and only
// a few intervals are open at any time.
func TestTailerCatchUpSideBySide(t *testing.T) {
	h := newHarness(t)
	h.diag = true
	h.now = testStart.Add(3 * time.Hour)
	written, perIv := backlogFiles(t, h, int64(DefaultConfig().Interval/time.Second))
	h.start()
	maxOpen := 0
	h.tl.SetEmit(func(b agent.Batch) {
		times := map[int64]bool{}
		for _, p := range b.Points {
			times[p.Time.Unix()] = true
		}
		// Open before this close: those still open and those just closed.
		maxOpen = max(maxOpen, len(h.tl.agg.open)+len(times))
		h.db.write(b.Points)
		b.Done()
	})
	for i := 0; i < 5 && (h.stat("records") < int64(len(written)) || h.stat("tail_lag_bytes") > 0); i++ {
		h.poll()
	}
	if got := h.stat("records"); got != int64(len(written)) {
		t.Fatalf("records=%d after catching up, wrote %d", got, len(written))
	}
	if late := h.stat("late"); late != 0 {
		t.Errorf("late=%d: the files were not read side by side", late)
	}
	t.Logf("at most %d intervals open; %d points", maxOpen, len(h.db))
	if maxOpen > maxOpenBound {
		t.Errorf("%d intervals open at once while catching up, want at most %d", maxOpen, maxOpenBound)
	}
	got := map[int64]int64{}
	for _, p := range h.db.points() {
		if p.Measurement == measAcct {
			c, _ := p.FieldValue("count")
			got[p.Time.Unix()] += c.(int64)
		}
	}
	wrong := 0
	for start, n := range perIv {
		if got[start] != n {
			if wrong++; wrong <= 5 {
				t.Errorf("interval %s: counted %d, written %d", time.Unix(start, 0).UTC(), got[start], n)
			}
		}
	}
	if wrong > 5 {
		t.Errorf("... %d intervals in all hold other counts than written", wrong)
	}
	if len(got) != len(perIv) {
		t.Errorf("%d intervals counted, %d written", len(got), len(perIv))
	}
	checkTotals(t, tallyPoints(t, h.db.points()), written)

	// Caught up, records of the last second are live tailing again: read
	// once per file, not side by side.
	h.now = testStart.Add(2*time.Hour + 30*time.Second)
	live, recs := records(8, 3, h.now.Add(-time.Second))
	appendFile(t, filepath.Join(h.dirA, "acct-2024-01-15-0000.csv"), live)
	if _, err := h.tl.files.discover(h.now); err != nil {
		t.Fatal(err)
	}
	if h.tl.backlog(h.tl.files.entries, h.now.Unix()) {
		t.Error("a second's records taken for a backlog")
	}
	h.poll()
	if got := h.stat("records"); got != int64(len(written)+len(recs)) {
		t.Errorf("records=%d after live records, want %d", got, len(written)+len(recs))
	}
}

// TestTailerCatchUpCrashReplay crashes after a catch-up whose batches were
// never confirmed: the cuts made between windows, with files stopped in the
// middle, must replay into the very same batches.
func TestTailerCatchUpCrashReplay(t *testing.T) {
	h := newHarness(t)
	h.diag = true
	h.ackBatches = false
	h.now = testStart.Add(3 * time.Hour)
	written, _ := backlogFiles(t, h, int64(DefaultConfig().Interval/time.Second))
	h.start()
	h.poll()
	first := h.batches
	if len(first) < 100 {
		t.Fatalf("only %d batches from a two-hour catch-up", len(first))
	}
	_ = h.tl.Close() // crash: no Done, no shutdown

	h.batches = nil
	h.ackBatches = true
	h.start()
	h.poll()
	if len(h.batches) < len(first) {
		t.Fatalf("replay emitted %d batches, want at least %d", len(h.batches), len(first))
	}
	for i := range first {
		if a, b := sortedLP(first[i].Points), sortedLP(h.batches[i].Points); a != b {
			t.Fatalf("replayed batch %d differs:\n--- before crash\n%s--- replay\n%s", i, a, b)
		}
	}
	if late := h.stat("late"); late != 0 {
		t.Errorf("late=%d after the replay", late)
	}
	checkTotals(t, tallyPoints(t, h.db.points()), written)
}
