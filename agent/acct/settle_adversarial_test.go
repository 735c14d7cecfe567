package acct

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// After a failed Settle the engine runs the same Tailer again. While it was
// stopped (up to shutdown_timeout) it held no descriptor: shutdown closed
// them all. A file finished and deleted (or moved out of the globs) in that
// window loses what the tailer had not read, which a running tailer drains
// through its descriptor (see the control case).
func TestAdversarialRunAgainAfterFailedSettle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stopped bool // the reload's stop and failed Settle happen
		fate    string
	}{
		{"running/deleted", false, "delete"},
		{"stopped/deleted", true, "delete"},
		{"running/moved-out", false, "moveout"},
		{"stopped/moved-out", true, "moveout"},
		{"stopped/moved-in-globs", true, "movein"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ackBatches = false
			f := filepath.Join(h.dirA, "acct-2024-01-15-0000.csv")
			data, written := records(1, 100, testStart)
			appendFile(t, f, append([]byte(header23+"\r\n"), data...))
			h.start()
			h.poll()
			h.now = h.now.Add(time.Minute)
			h.poll()
			if tc.stopped {
				h.tl.shutdown()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				if err := h.tl.Settle(ctx); err == nil {
					t.Fatal("Settle succeeded with batches outstanding")
				}
				cancel()
			}
			// PowerMTA's last records, then rotation.
			more, recs := records(2, 40, testStart.Add(200*time.Second))
			appendFile(t, f, more)
			written = append(written, recs...)
			switch tc.fate {
			case "delete":
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			case "moveout":
				out := filepath.Join(filepath.Dir(h.dirA), "archive")
				_ = os.MkdirAll(out, 0o755)
				if err := os.Rename(f, filepath.Join(out, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			case "movein":
				if err := os.Rename(f, filepath.Join(h.dirB, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			}
			for range 5 {
				h.now = h.now.Add(time.Second)
				h.poll()
			}
			var all []agent.Point
			for _, b := range h.batches {
				all = append(all, b.Points...)
			}
			if got := sumCount(t, all); got != int64(len(written)) {
				t.Errorf("counted %d records, written %d", got, len(written))
			}
		})
	}
}
