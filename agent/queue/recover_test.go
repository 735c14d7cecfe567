package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// place says where a record lies on disk.
type place struct {
	path      string
	off, size int64
}

// fill appends n entries (entry i has 10+i points, minute i) and returns
// where each seq lies, then closes the queue.
func fill(t *testing.T, o Options, n int) ([][]agent.Point, map[uint64]place) {
	t.Helper()
	q := openQ(t, o)
	var batches [][]agent.Point
	for i := range n {
		b := makePoints(uint64(i), 10+i, t0.Add(time.Duration(i)*time.Minute))
		batches = append(batches, b)
		mustAppend(t, q, b)
	}
	places := map[uint64]place{}
	q.mu.Lock()
	for _, s := range q.segs {
		for _, sl := range s.slots {
			places[sl.seq] = place{s.path, int64(sl.off), int64(sl.size)}
		}
	}
	q.mu.Unlock()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return batches, places
}

// drain reads every entry without acknowledging, checks each against the
// batch it was made from, and returns the seqs in order.
func drain(t *testing.T, q *Queue, batches [][]agent.Point) []uint64 {
	t.Helper()
	var seqs []uint64
	for seq := uint64(0); ; {
		e, ok := q.After(seq)
		if !ok {
			return seqs
		}
		if int(e.Seq) <= len(batches) {
			if d := diffPoints(e.Points, batches[e.Seq-1]); d != "" {
				t.Fatalf("seq %d: %s", e.Seq, d)
			}
		}
		seqs = append(seqs, e.Seq)
		seq = e.Seq
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func seqRange(from, to uint64, except ...uint64) []uint64 {
	var s []uint64
next:
	for i := from; i <= to; i++ {
		for _, e := range except {
			if i == e {
				continue next
			}
		}
		s = append(s, i)
	}
	return s
}

func quarantineFiles(t *testing.T, dir string) []string {
	ents, _ := os.ReadDir(filepath.Join(dir, quarantineDir))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRecovery(t *testing.T) {
	t.Run("truncated last record", func(t *testing.T) {
		dir := t.TempDir()
		batches, places := fill(t, Options{Dir: dir}, 5)
		p := places[5]
		for _, cut := range []int64{p.size - 1, p.size / 2, recHeaderSize - 3} {
			os.Truncate(p.path, p.off+cut)
			q := openQ(t, Options{Dir: dir})
			if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 4)) {
				t.Fatalf("cut at %d: entries %v", cut, got)
			}
			if n := stat(q, "quarantined_files"); n != 0 {
				t.Fatalf("a torn tail was quarantined (%d)", n)
			}
			if sz := fileSize(t, p.path); sz != p.off {
				t.Fatalf("segment is %d bytes after recovery, want %d", sz, p.off)
			}
			q.Close()
		}
		q := openQ(t, Options{Dir: dir})
		mustAppend(t, q, batches[4])
		q.Close()
		q = openQ(t, Options{Dir: dir})
		if got := drain(t, q, nil); len(got) != 5 || got[4] < 5 {
			t.Fatalf("after appending to a repaired segment: %v", got)
		}
	})

	t.Run("corrupt record in the middle", func(t *testing.T) {
		dir := t.TempDir()
		batches, places := fill(t, Options{Dir: dir}, 5)
		flipByte(t, places[3].path, places[3].off+recHeaderSize+10)
		q := openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 5, 3)) {
			t.Fatalf("entries %v", got)
		}
		if n := stat(q, "quarantined_files"); n != 1 {
			t.Fatalf("quarantined_files = %d", n)
		}
		if names := quarantineFiles(t, dir); len(names) != 1 || !strings.HasPrefix(names[0], filepath.Base(places[3].path)) {
			t.Fatalf("quarantine holds %v", names)
		}
		mustAppend(t, q, makePoints(9, 3, t0))
		q.Close()
		// The kept copy is clean: nothing more to quarantine.
		q = openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, []uint64{1, 2, 4, 5, 6}) || stat(q, "quarantined_files") != 0 {
			t.Fatalf("second open: entries %v, quarantined %d", got, stat(q, "quarantined_files"))
		}
	})

	t.Run("corrupt record header in the middle", func(t *testing.T) {
		dir := t.TempDir()
		batches, places := fill(t, Options{Dir: dir}, 5)
		flipByte(t, places[2].path, places[2].off+5) // the length
		q := openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 5, 2)) {
			t.Fatalf("entries %v", got)
		}
		if n := stat(q, "quarantined_files"); n != 1 {
			t.Fatalf("quarantined_files = %d", n)
		}
	})

	t.Run("corrupt segment header", func(t *testing.T) {
		dir := t.TempDir()
		o := Options{Dir: dir, MaxBytes: 256 << 10} // 32 KiB segments
		batches, places := fill(t, o, 40)
		first := places[1].path
		if places[40].path == first {
			t.Fatal("test needs several segments")
		}
		flipByte(t, first, 0)
		q := openQ(t, o)
		got := drain(t, q, batches)
		if len(got) == 0 || got[0] == 1 || got[len(got)-1] != 40 {
			t.Fatalf("entries %v", got)
		}
		for seq, p := range places {
			if p.path != first && !contains(got, seq) {
				t.Fatalf("entry %d of an intact segment is missing", seq)
			}
		}
		if n := stat(q, "quarantined_files"); n != 1 {
			t.Fatalf("quarantined_files = %d", n)
		}
	})

	t.Run("torn tail of an older segment", func(t *testing.T) {
		dir := t.TempDir()
		o := Options{Dir: dir, MaxBytes: 256 << 10}
		batches, places := fill(t, o, 40)
		p := places[1]
		var last uint64
		for seq, pl := range places {
			if pl.path == p.path {
				last = max(last, seq)
			}
		}
		os.Truncate(p.path, places[last].off+7)
		q := openQ(t, o)
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 40, last)) {
			t.Fatalf("entries %v, want all but %d", got, last)
		}
	})

	t.Run("junk files", func(t *testing.T) {
		dir := t.TempDir()
		batches, _ := fill(t, Options{Dir: dir}, 3)
		os.WriteFile(filepath.Join(dir, "foo.txt"), []byte("hello"), 0o644)
		os.WriteFile(filepath.Join(dir, segName(99)), nil, 0o644)
		os.WriteFile(filepath.Join(dir, segName(98)), []byte("not a segment at all, but long enough"), 0o644)
		os.Mkdir(filepath.Join(dir, segName(100)), 0o755)
		os.Mkdir(filepath.Join(dir, "subdir"), 0o755)
		os.WriteFile(filepath.Join(dir, segName(7)+".tmp"), []byte("half"), 0o644)
		os.WriteFile(filepath.Join(dir, "meta.tmp"), []byte("half"), 0o644)
		os.Symlink("/etc/passwd", filepath.Join(dir, segName(101)))
		q := openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 3)) {
			t.Fatalf("entries %v", got)
		}
		if n := stat(q, "quarantined_files"); n != 2 {
			t.Fatalf("quarantined_files = %d, want 2 (the two segment-named files that are not segments)", n)
		}
		for _, gone := range []string{segName(7) + ".tmp", "meta.tmp", segName(99), segName(98)} {
			if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
				t.Errorf("%s is still in the directory", gone)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "foo.txt")); err != nil {
			t.Errorf("foo.txt was touched: %v", err)
		}
		// Numbering stays above every segment name seen.
		mustAppend(t, q, batches[0])
		if e, _ := q.Newest(); e.Seq < 99 {
			t.Fatalf("new seq %d is below a segment name seen (99)", e.Seq)
		}
	})

	t.Run("full disk", func(t *testing.T) {
		dir := t.TempDir()
		o := Options{Dir: dir, MaxBytes: 256 << 10, Sync: SyncAlways} // 32 KiB segments
		q := openQ(t, o)
		full := false
		q.mu.Lock()
		q.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
			if full {
				n, _ := f.WriteAt(b[:len(b)/2], off) // a partial write, as on ENOSPC
				return n, syscall.ENOSPC
			}
			return f.WriteAt(b, off)
		}
		q.mu.Unlock()
		setFull := func(v bool) {
			q.mu.Lock()
			full = v
			q.mu.Unlock()
		}
		var kept [][]agent.Point
		keep := func(i int) {
			b := makePoints(uint64(i), 400, t0) // about 16 KiB
			kept = append(kept, b)
			mustAppend(t, q, b)
		}
		outage := func(what string) {
			t.Helper()
			files := segFiles(t, dir)
			last := files[len(files)-1]
			before := fileSize(t, last)
			setFull(true)
			for i := range 5 {
				called := false
				err := q.Append(makePoints(uint64(i), 400, t0), func() { called = true })
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("%s: Append on a full disk: %v", what, err)
				}
				if called {
					t.Fatalf("%s: durable called for a refused entry", what)
				}
			}
			setFull(false)
			if sz := fileSize(t, last); sz != before {
				t.Fatalf("%s: segment grew from %d to %d bytes through failed writes", what, before, sz)
			}
			if after := segFiles(t, dir); len(after) != len(files) {
				t.Fatalf("%s: segment files %v, before %v", what, after, files)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) > 0 {
				t.Fatalf("%s: left %v", what, m)
			}
			if entries, _, _ := q.Pending(); entries != len(kept) {
				t.Fatalf("%s: %d entries pending, want %d", what, entries, len(kept))
			}
		}
		keep(0)
		outage("appending to a segment")
		keep(1) // fills the segment
		outage("starting a segment")
		keep(2)
		if n := stat(q, "write_errors"); n != 10 {
			t.Fatalf("write_errors = %d, want 10", n)
		}
		q.Close()
		q = openQ(t, o)
		var got [][]agent.Point
		for seq := uint64(0); ; {
			e, ok := q.After(seq)
			if !ok {
				break
			}
			got = append(got, e.Points)
			seq = e.Seq
		}
		if len(got) != len(kept) {
			t.Fatalf("%d entries after reopen, want %d", len(got), len(kept))
		}
		for i := range got {
			if d := diffPoints(got[i], kept[i]); d != "" {
				t.Fatalf("entry %d: %s", i, d)
			}
		}
		if stat(q, "quarantined_files") != 0 {
			t.Fatal("failed writes left damage that was quarantined")
		}
	})

	t.Run("locked by another process", func(t *testing.T) {
		dir := t.TempDir()
		q := openQ(t, Options{Dir: dir})
		_, err := Open(Options{Dir: dir, Log: testLog()})
		want := fmt.Sprintf("queue directory %s is locked by another process (pid %d)", dir, os.Getpid())
		if err == nil || err.Error() != want {
			t.Fatalf("second Open: %v\nwant %s", err, want)
		}
		q.Close()
		q2, err := Open(Options{Dir: dir, Log: testLog()})
		if err != nil {
			t.Fatalf("Open after Close: %v", err)
		}
		q2.Close()
	})

	t.Run("metadata ahead of data", func(t *testing.T) {
		dir := t.TempDir()
		batches, _ := fill(t, Options{Dir: dir}, 5)
		writeMeta(t, dir, 3, 4)
		q := openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(4, 5)) {
			t.Fatalf("front 3: entries %v", got)
		}
		mustAppend(t, q, batches[0])
		if e, _ := q.Newest(); e.Seq != 6 {
			t.Fatalf("new seq %d, want 6", e.Seq)
		}
		q.Close()
		// The acknowledged front beyond every record (the data of the
		// last seconds was lost, the meta file was not).
		writeMeta(t, dir, 100, 101)
		q = openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); len(got) != 0 {
			t.Fatalf("front 100: entries %v", got)
		}
		if entries, _, _ := q.Pending(); entries != 0 {
			t.Fatalf("front 100: %d pending", entries)
		}
		mustAppend(t, q, batches[0])
		if e, _ := q.Newest(); e.Seq != 101 {
			t.Fatalf("new seq %d, want 101", e.Seq)
		}
		if segs := segFiles(t, dir); len(segs) != 1 {
			t.Fatalf("%d segments, want the one taking appends", len(segs))
		}
	})

	t.Run("damaged metadata", func(t *testing.T) {
		dir := t.TempDir()
		batches, _ := fill(t, Options{Dir: dir}, 3)
		os.WriteFile(filepath.Join(dir, metaName), []byte("garbage"), 0o644)
		q := openQ(t, Options{Dir: dir})
		if got := drain(t, q, batches); !equalSeqs(got, seqRange(1, 3)) {
			t.Fatalf("entries %v", got)
		}
		if stat(q, "quarantined_files") != 1 {
			t.Fatal("damaged meta file not quarantined")
		}
	})

	t.Run("record damaged while open", func(t *testing.T) {
		dir := t.TempDir()
		q := openQ(t, Options{Dir: dir})
		var batches [][]agent.Point
		for i := range 3 {
			b := makePoints(uint64(i), 30, t0)
			batches = append(batches, b)
			mustAppend(t, q, b)
		}
		mustAppend(t, q, makePoints(9, 1, t0)) // pushes 3 out of the cache
		q.mu.Lock()
		s, sl := q.segs[0], q.segs[0].slots[0]
		q.mu.Unlock()
		flipByte(t, s.path, int64(sl.off)+recHeaderSize+20)
		e, ok := q.Oldest()
		if !ok || e.Seq != 2 {
			t.Fatalf("Oldest = %d, %v; want 2 (1 is unreadable)", e.Seq, ok)
		}
		if stat(q, "read_errors") != 1 || stat(q, "dropped_entries") != 1 || stat(q, "dropped_points") != 30 {
			t.Fatalf("stats %v", q.Stats())
		}
	})
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func writeMeta(t *testing.T, dir string, front, next uint64) {
	t.Helper()
	b := []byte(metaMagic)
	b = binary.LittleEndian.AppendUint64(b, front)
	b = binary.LittleEndian.AppendUint64(b, next)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if err := os.WriteFile(filepath.Join(dir, metaName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
