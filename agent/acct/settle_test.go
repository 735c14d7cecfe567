package acct

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// A reload hands the accounting source from one tailer to the next through
// the checkpoint: Settle waits until every emitted batch is durable (and
// fails, changing nothing, while one is not), and the successor then reads
// on from where its predecessor stopped — no record counted twice, none
// skipped. A tailer whose Settle failed runs on: polling again after a stop
// reads what was appended meanwhile.
func TestSettleHandsOverExactly(t *testing.T) {
	h := newHarness(t)
	h.ackBatches = false // the sinks' buffers hold the batches until released
	f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
	data, written := records(1, 100, testStart)
	appendFile(t, f, append([]byte(header23+"\r\n"), data...))
	h.start()
	h.poll()
	h.now = h.now.Add(10 * time.Minute)
	h.poll() // closes intervals: batches go out, not yet durable
	if len(h.batches) == 0 {
		t.Fatal("no batch emitted")
	}

	h.tl.shutdown() // as Run does when stopped
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	err := h.tl.Settle(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "not yet durable") {
		t.Fatalf("Settle with batches outstanding: %v", err)
	}

	// It runs on after the failed Settle: a poll reads what was appended.
	more, recs := records(2, 40, testStart.Add(200*time.Second))
	appendFile(t, f, more)
	written = append(written, recs...)
	h.poll()
	if got := h.stat("records"); got != 140 {
		t.Fatalf("records after polling again: %d, want 140", got)
	}

	h.tl.shutdown()
	go func() {
		time.Sleep(20 * time.Millisecond)
		for _, b := range h.batches {
			if b.Done != nil {
				b.Done()
			}
		}
	}()
	if err := h.tl.Settle(context.Background()); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	_ = h.tl.Close()

	// The successor: only what follows is read.
	h.ackBatches = true
	h.start()
	last, recs := records(3, 60, testStart.Add(400*time.Second))
	appendFile(t, f, last)
	written = append(written, recs...)
	h.poll()
	h.now = h.now.Add(time.Hour)
	h.poll()
	var all []agent.Point
	for _, b := range h.batches {
		all = append(all, b.Points...)
	}
	if got := sumCount(t, all); got != int64(len(written)) {
		t.Fatalf("counted %d records over both tailers, written %d", got, len(written))
	}
	checkTotals(t, tallyPoints(t, all), written)
}
