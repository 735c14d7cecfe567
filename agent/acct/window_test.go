package acct

import (
	"context"
	"errors"
	"math"
	"testing"
)

// fakeWindowFiles are files of record times for the windowReader, read
// through its read function without any I/O.
type fakeWindowFiles struct {
	times [][]int64 // per file, ascending
	pos   []int     // per file, the first unread record
	fail  map[int]bool
	read  []int64 // every record read, in order
}

func newFakeWindowFiles(times ...[]int64) *fakeWindowFiles {
	return &fakeWindowFiles{times: times, pos: make([]int, len(times)), fail: map[int]bool{}}
}

func (f *fakeWindowFiles) readUntil(i int, until int64) (bool, int64, error) {
	if f.fail[i] {
		return false, 0, errors.New("unreadable")
	}
	ts := f.times[i]
	for ; f.pos[i] < len(ts); f.pos[i]++ {
		if ts[f.pos[i]] >= until {
			return true, ts[f.pos[i]], nil
		}
		f.read = append(f.read, ts[f.pos[i]])
	}
	return false, 0, nil
}

// span returns n times from start on, one every step seconds.
func span(start, step int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out
}

// TestWindowReaderSideBySide: two files of the same hour, a third that
// starts later; every window reads each file up to the window's end before
// windowDone, windows start on interval boundaries, and everything is read
// once.
func TestWindowReaderSideBySide(t *testing.T) {
	const iv = 10
	f := newFakeWindowFiles(span(1000, 1, 3600), span(1001, 2, 1800), span(4000, 5, 30))
	var windows int
	w := windowReader{
		iv:   iv,
		read: f.readUntil,
		windowDone: func(start, until int64) {
			windows++
			if start%iv != 0 || until != start+readWindow {
				t.Fatalf("window [%d, %d) is not %d s from an interval start", start, until, readWindow)
			}
			// Whatever is unread is at or after the window's end.
			for i, ts := range f.times {
				if p := f.pos[i]; p < len(ts) && ts[p] < until {
					t.Fatalf("window up to %d left file %d at %d", until, i, ts[p])
				}
			}
		},
	}
	if err := w.run(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if want := 3600 + 1800 + 30; len(f.read) != want {
		t.Fatalf("read %d records, want %d", len(f.read), want)
	}
	// Across files, records come in window order: never one from a window
	// before the window of a record read earlier.
	for i := 1; i < len(f.read); i++ {
		if floorDiv(f.read[i], readWindow) < floorDiv(f.read[i-1], readWindow)-1 {
			t.Fatalf("record %d at %d read after one at %d", i, f.read[i], f.read[i-1])
		}
	}
	if windows < 3600/readWindow {
		t.Fatalf("%d windows for an hour", windows)
	}
}

// An interval longer than readWindow makes the window one interval.
func TestWindowReaderLongInterval(t *testing.T) {
	f := newFakeWindowFiles(span(0, 30, 20))
	w := windowReader{iv: 300, read: f.readUntil, windowDone: func(start, until int64) {
		if until-start != 300 {
			t.Fatalf("window [%d, %d), want one 300 s interval", start, until)
		}
	}}
	if err := w.run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
}

// A file that fails is dropped and the others are read to their end; a
// cancelled context stops the reader with its error.
func TestWindowReaderFailureAndCancel(t *testing.T) {
	f := newFakeWindowFiles(span(0, 1, 100), span(0, 1, 100))
	f.fail[0] = true
	w := windowReader{iv: 10, read: f.readUntil, windowDone: func(int64, int64) {}}
	if err := w.run(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if len(f.read) != 100 {
		t.Fatalf("read %d records of the good file, want 100", len(f.read))
	}

	f = newFakeWindowFiles(span(0, 1, 1000))
	ctx, cancel := context.WithCancel(context.Background())
	w = windowReader{iv: 10, read: f.readUntil, windowDone: func(int64, int64) { cancel() }}
	if err := w.run(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if len(f.read) != readWindow {
		t.Fatalf("read %d records before the cancel, want one window (%d)", len(f.read), readWindow)
	}
}

// The first read of each file only finds where it starts.
func TestWindowReaderFirstReadFindsTheStart(t *testing.T) {
	f := newFakeWindowFiles(span(500, 1, 5))
	var firstUntil int64 = 1
	w := windowReader{iv: 10, read: func(i int, until int64) (bool, int64, error) {
		if firstUntil == 1 {
			firstUntil = until
		}
		return f.readUntil(i, until)
	}, windowDone: func(int64, int64) {}}
	if err := w.run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if firstUntil != math.MinInt64 {
		t.Fatalf("first read until %d, want math.MinInt64", firstUntil)
	}
}
