package acct

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// recsIn counts the generated records logged in [from, to).
func recsIn(recs []genRecord, start time.Time, step time.Duration, from, to time.Time) int64 {
	var n int64
	for i := range recs {
		ts := start.Add(time.Duration(i) * step)
		if !ts.Before(from) && ts.Before(to) {
			n++
		}
	}
	return n
}

// The first chunk read from the middle of a file ends at from+64 KiB, and
// that read treats its end as the end of a line: the record cut there is
// parsed in two pieces. With one record per interval, a record lost that way
// begins an interval the preview keeps: for every position of the cut, the
// preview must hold exactly the records logged in [From, To).
func TestAdversarialPreviewFirstChunkCut(t *testing.T) {
	dir := t.TempDir()
	step := 10 * time.Second // one record per 10 s interval
	data, recs := genFile(3, 2000, testStart, step, false)
	name := filepath.Join(dir, "acct-2024-01-15-0001.csv")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Globs = []string{filepath.Join(dir, "acct-*.csv")}
	now := func() time.Time { return testStart.Add(2000*step + time.Minute) }
	bad := 0
	for tail := int64(200 << 10); tail < 200<<10+1200; tail += 3 {
		res, err := Preview(PreviewOptions{Config: cfg, Window: 24 * time.Hour, TailBytes: tail, Now: now}, agent.NewISPMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := recsIn(recs, testStart, step, res.From, res.To)
		if res.Records != want || sumCount(t, res.Points) != want {
			if bad < 5 {
				t.Errorf("tail %d: preview says %d records from %s to %s, %d were logged there", tail, res.Records,
					res.From.Format(time.TimeOnly), res.To.Format(time.TimeOnly), want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of 400 tail sizes give a preview that is not exact", bad)
	}
}

// PowerMTA rotates by size in the middle of an interval (and at midnight);
// the newest file then holds only the end of the interval it starts in, the
// older file of the same kind (not read) its beginning. The preview's window
// (From..To) must hold exactly the records logged in it — with -sinks those
// points overwrite the agent's in InfluxDB.
func TestAdversarialPreviewAfterRotation(t *testing.T) {
	dir := t.TempDir()
	data, recs := genFile(4, 1200, testStart, time.Second, false)
	// Rotation after the record of 1185 s: the old file has 0..1184.
	cut := 0
	for i := 0; i < 1185; i++ {
		cut += len(recs[i].line)
	}
	hdr := len(header23) + 1
	oldName := filepath.Join(dir, "acct-2024-01-15-0000.csv")
	newName := filepath.Join(dir, "acct-2024-01-15-0001.csv")
	if err := os.WriteFile(oldName, data[:hdr+cut], 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	_ = os.Chtimes(oldName, past, past)
	if err := os.WriteFile(newName, append([]byte(header23+"\n"), data[hdr+cut:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Globs = []string{filepath.Join(dir, "acct-*.csv")}
	now := func() time.Time { return testStart.Add(1225 * time.Second) }
	res, err := Preview(PreviewOptions{Config: cfg, Now: now}, agent.NewISPMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := recsIn(recs, testStart, time.Second, res.From, res.To)
	t.Logf("files %v; preview %s..%s: %d records, %d logged", res.Files, res.From.Sub(testStart), res.To.Sub(testStart), res.Records, want)
	if res.Records != want {
		t.Errorf("preview after a rotation: %d records from %s to %s, %d were logged there", res.Records,
			res.From.Sub(testStart), res.To.Sub(testStart), want)
	}
	// The interval 1180..1190 s in the preview, against the tailer's.
	for _, p := range res.Points {
		if p.Measurement == measAcct && p.Time.Equal(testStart.Add(1180*time.Second)) {
			c, _ := p.FieldValue("count")
			t.Logf("interval at 1180 s: %v %v count %v (the tailer counts the whole interval)", p.Tags, p.Time, c)
		}
	}
}

// A line being written (no line end yet) at the end of an idle file: the
// tailer does not count it until its line end comes; the preview must not
// show a count the tailer would not make.
func TestAdversarialPreviewPartialLastLine(t *testing.T) {
	dir := t.TempDir()
	data, recs := genFile(5, 120, testStart, time.Second, false)
	last := recs[len(recs)-1].line
	// Cut the last record after its timeLogged and some fields.
	partial := data[:len(data)-len(last)+len(last)*2/3]
	name := filepath.Join(dir, "acct-2024-01-15-0001.csv")
	if err := os.WriteFile(name, partial, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Globs = []string{filepath.Join(dir, "acct-*.csv")}
	now := func() time.Time { return testStart.Add(10 * time.Minute) }
	res, err := Preview(PreviewOptions{Config: cfg, Now: now}, agent.NewISPMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := recsIn(recs[:len(recs)-1], testStart, time.Second, res.From, res.To)
	if res.Records != want {
		t.Errorf("partial last line: preview has %d records in %s..%s, %d complete ones were logged", res.Records,
			res.From.Sub(testStart), res.To.Sub(testStart), want)
	}
}

// The same at every cut position of the last line: a line without its line
// end is not a record yet.
func TestAdversarialPreviewPartialLastLineEveryCut(t *testing.T) {
	dir := t.TempDir()
	data, recs := genFile(6, 120, testStart, time.Second, false)
	last := recs[len(recs)-1].line
	cfg := DefaultConfig()
	name := filepath.Join(dir, "acct-2024-01-15-0001.csv")
	cfg.Globs = []string{name}
	now := func() time.Time { return testStart.Add(10 * time.Minute) }
	bad := 0
	for keep := 1; keep < len(last)-1; keep++ {
		if err := os.WriteFile(name, data[:len(data)-len(last)+keep], 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Preview(PreviewOptions{Config: cfg, Now: now}, agent.NewISPMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := recsIn(recs[:len(recs)-1], testStart, time.Second, res.From, res.To)
		if res.Records != want {
			if bad == 0 {
				t.Errorf("last line cut after %d of %d bytes (%q): preview has %d records, %d complete ones were logged",
					keep, len(last), last[max(0, keep-20):keep], res.Records, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d cut positions count the unfinished line", bad, len(last)-2)
	}
}
