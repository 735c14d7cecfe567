package acct

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"
)

// TestLimitedLog: the first line at once, then at most one per period with
// the number held back since the last.
func TestLimitedLog(t *testing.T) {
	rec := logtest.New()
	now := testStart
	l := newLimitedLog(rec.Logger(), slog.LevelError, 10*time.Second, func() time.Time { return now })
	for i := range 25 {
		l.log("bad line", "n", i)
		now = now.Add(time.Second)
	}
	lines := rec.Records()
	if len(lines) != 3 {
		t.Fatalf("%d lines for 25 occurrences over 25 s at one per 10 s, want 3: %v", len(lines), lines)
	}
	if strings.Contains(lines[0].String(), "suppressed_since_last") {
		t.Errorf("first line says something was suppressed: %v", lines[0])
	}
	for _, line := range lines[1:] {
		if !strings.Contains(line.String(), "suppressed_since_last=9") || line.Level != slog.LevelError || line.Msg != "bad line" {
			t.Errorf("line %v, want ERROR bad line with suppressed_since_last=9", line)
		}
	}
}
