package queue

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// testLog discards everything; tests that check logging use a recorder.
func testLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openQ opens a queue in dir with test defaults (no background fsync during
// the test unless opts ask for it) and closes it at the end of the test.
func openQ(t testing.TB, o Options) *Queue {
	t.Helper()
	if o.Log == nil {
		o.Log = testLog()
	}
	if o.SyncEvery == 0 {
		o.SyncEvery = time.Hour
	}
	q, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func mustAppend(t testing.TB, q *Queue, points []agent.Point) {
	t.Helper()
	if err := q.Append(points, nil); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// makePoints returns n points shaped like the agent's pmta_queue points: a
// few hundred distinct domains and vmtas, mixed field types, one timestamp
// per batch. The same seed gives the same points.
func makePoints(seed uint64, n int, at time.Time) []agent.Point {
	r := rand.New(rand.NewPCG(seed, 7))
	points := make([]agent.Point, n)
	for i := range points {
		dom := fmt.Sprintf("domain%03d.example", r.IntN(400))
		points[i] = agent.NewPoint("pmta_queue", []agent.Tag{
			{Key: "server", Value: "mta01"},
			{Key: "domain", Value: dom},
			{Key: "isp", Value: []string{"gmail", "microsoft", "yahoo", "other"}[r.IntN(4)]},
			{Key: "vmta", Value: fmt.Sprintf("vmta%02d", r.IntN(40))},
		}, []agent.Field{
			{Key: "rcp", Value: int64(r.IntN(100000))},
			{Key: "kb", Value: r.Float64() * 1e6},
			{Key: "conn", Value: int64(r.IntN(50))},
			{Key: "paused", Value: int64(r.IntN(2))},
			{Key: "backoff", Value: int64(r.IntN(2))},
		}, at)
	}
	return points
}

// diffPoints describes the first difference between two point lists, or ""
// when they are equal (times compared as instants).
func diffPoints(got, want []agent.Point) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d points, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Measurement != w.Measurement || !g.Time.Equal(w.Time) || g.Time.IsZero() != w.Time.IsZero() ||
			!slices.Equal(g.Tags, w.Tags) || !slices.EqualFunc(g.Fields, w.Fields, fieldEqual) {
			return fmt.Sprintf("point %d: got %+v, want %+v", i, g, w)
		}
	}
	return ""
}

// fieldEqual compares values bit for bit, so that NaN equals NaN.
func fieldEqual(a, b agent.Field) bool {
	if a.Key != b.Key {
		return false
	}
	fa, ok1 := a.Value.(float64)
	fb, ok2 := b.Value.(float64)
	if ok1 && ok2 {
		return math.Float64bits(fa) == math.Float64bits(fb)
	}
	return a.Value == b.Value
}

// segFiles lists the segment files of dir.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// stat returns one field of q.Stats().
func stat(q *Queue, key string) int64 {
	for _, f := range q.Stats() {
		if f.Key == key {
			return f.Value.(int64)
		}
	}
	return -1
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
