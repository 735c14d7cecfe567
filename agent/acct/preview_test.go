package acct

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// A preview shows the newest closed intervals of the newest file of each
// kind, exactly as counted, from the end of the file only: an interval cut
// by where the reading began, or still open, is left out.
func TestPreview(t *testing.T) {
	dir := t.TempDir()
	// 1,200 records, one a second from testStart: 20 minutes.
	data, recs := genFile(1, 1200, testStart, time.Second, true)
	newest := filepath.Join(dir, "acct-2024-01-15-0001.csv")
	if err := os.WriteFile(newest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// An older file of the same kind is not read.
	older := filepath.Join(dir, "acct-2024-01-15-0000.csv")
	old, _ := genFile(2, 100, testStart.Add(-time.Hour), time.Second, true)
	if err := os.WriteFile(older, old, 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(older, past, past); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Globs = []string{filepath.Join(dir, "acct-*.csv")}
	// The clock stands 25 s after the last record: the intervals up to
	// testStart+1200s are closed, less the grace.
	now := func() time.Time { return testStart.Add(1225 * time.Second) }

	for _, tc := range []struct {
		name      string
		tail      int64
		window    time.Duration
		from, to  int // seconds after testStart
		wantWhole bool
	}{
		{name: "whole file, one minute", tail: 1 << 30, window: time.Minute, from: 1140, to: 1200},
		{name: "whole file, five minutes", tail: 1 << 30, window: 5 * time.Minute, from: 900, to: 1200},
		// 100 KiB hold about 200 records: the first interval read from its
		// middle is left out, and so is the one of the first chunk.
		{name: "the end only", tail: 100 << 10, window: time.Hour, from: -1, to: 1200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Preview(PreviewOptions{Config: cfg, Window: tc.window, TailBytes: tc.tail, Now: now}, agent.NewISPMap(nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Files) != 1 || res.Files[0] != newest {
				t.Fatalf("files %v, want the newest only", res.Files)
			}
			from, to := int(res.From.Sub(testStart)/time.Second), int(res.To.Sub(testStart)/time.Second)
			if to != tc.to || tc.from >= 0 && from != tc.from {
				t.Fatalf("preview of %d s to %d s, want %d to %d", from, to, tc.from, tc.to)
			}
			if tc.from < 0 && (from <= 900 || from >= 1200-60) {
				t.Fatalf("preview from %d s: 100 KiB at the end hold about 200 records", from)
			}
			// Exactly the records logged in [from, to).
			want := recs[from:to]
			if res.Records != int64(len(want)) || sumCount(t, res.Points) != int64(len(want)) {
				t.Fatalf("%d records in the preview, %d logged from %d s to %d s", res.Records, len(want), from, to)
			}
			checkTotals(t, tallyPoints(t, res.Points), want)
		})
	}

	// An interval still open is not shown: the clock at the last record.
	res, err := Preview(PreviewOptions{Config: cfg, TailBytes: 1 << 30, Now: func() time.Time { return testStart.Add(1199 * time.Second) }}, agent.NewISPMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if to := res.To.Sub(testStart); to != 1190*time.Second {
		t.Errorf("preview up to %s, want 19m50s: the interval from 1190 s is open", to)
	}
}
