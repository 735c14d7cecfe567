package acct

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// backfillPoints runs Backfill over files and returns every emitted point.
func backfillPoints(t *testing.T, files ...string) ([]agent.Point, BackfillStats) {
	t.Helper()
	var pts []agent.Point
	st, err := Backfill(context.Background(), files, BackfillOptions{Logger: discardLogger()}, agent.NewISPMap(nil),
		func(b agent.Batch) { pts = append(pts, b.Points...) }, nil)
	if err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	return pts, st
}

// TestGolden reads the reference samples (CRLF, as PowerMTA writes them) and
// compares the emitted points, as line protocol, with testdata/*.golden. The
// same files with LF line ends must give the same points.
func TestGolden(t *testing.T) {
	cases := []struct {
		file               string
		records, malformed int64
	}{
		{"union-33.csv", 16, 0},
		{"acct-2024-01-15-0000.csv", 2, 0},
		{"diag-2024-01-15-0000.csv", 2, 0},
		{"old-epoch.csv", 2, 0},
		{"edge-cases.csv", 7, 3},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte("\r\n")) {
				t.Fatalf("%s: fixture must have CRLF line ends", path)
			}
			pts, st := backfillPoints(t, path)
			if st.Records != tc.records || st.Malformed != tc.malformed {
				t.Errorf("records=%d malformed=%d, want %d and %d", st.Records, st.Malformed, tc.records, tc.malformed)
			}
			if got := sumCount(t, pts); got != st.Records {
				t.Errorf("sum of count = %d, records read = %d", got, st.Records)
			}
			got := fmt.Sprintf("# records=%d malformed=%d\n", st.Records, st.Malformed) + sortedLP(pts)
			golden := filepath.Join("testdata", strings.TrimSuffix(tc.file, ".csv")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s--- want\n%s", golden, got, want)
			}

			lf := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(lf, bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			lfPts, lfSt := backfillPoints(t, lf)
			if lfSt.Records != st.Records || sortedLP(lfPts) != sortedLP(pts) {
				t.Errorf("LF line ends give other points than CRLF:\n%s", sortedLP(lfPts))
			}
		})
	}
}
