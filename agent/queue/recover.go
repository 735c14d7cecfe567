package queue

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// load rebuilds the queue from its directory. Whatever it finds, it ends
// with at least one segment to append to; it fails only on I/O errors that
// leave the directory unusable.
func (q *Queue) load() error {
	dir := q.opt.Dir
	m, err := readMeta(dir)
	if err != nil {
		q.log.Error("queue meta file is damaged; acknowledged entries of the oldest segment may be delivered again", "err", err)
		if qerr := q.quarantine(metaName, err.Error()); qerr != nil {
			return qerr
		}
		m = meta{}
	}
	q.savedFront, q.savedNext = m.front, m.next
	next := max(m.next, m.front+1, 1)

	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list queue directory: %w", err)
	}
	type cand struct {
		name string
		base uint64
	}
	var cands []cand
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == "LOCK" || name == metaName || name == quarantineDir:
		case strings.HasSuffix(name, ".tmp") && e.Type().IsRegular():
			// A temporary file of a segment creation, salvage or meta
			// save that a crash interrupted; the original is intact.
			os.Remove(filepath.Join(dir, name))
		default:
			base, ok := parseSegName(name)
			if ok && e.Type().IsRegular() {
				cands = append(cands, cand{name, base})
				next = max(next, base)
				continue
			}
			q.log.Warn("ignoring an unknown file in the queue directory", "file", name)
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return compareU64(a.base, b.base) })

	minSeq := uint64(1)
	for _, c := range cands {
		s, err := q.openSegment(c.name, c.base, minSeq)
		if err != nil {
			return err
		}
		if s == nil {
			continue // quarantined
		}
		if last := s.lastSeq(); last > 0 {
			minSeq = last + 1
			next = max(next, last+1)
		}
		q.segs = append(q.segs, s)
		q.diskBytes += s.size
		for i := range s.slots {
			sl := &s.slots[i]
			if sl.seq <= m.front {
				sl.acked = true
				continue
			}
			s.live++
			q.live++
			q.livePoints += int(sl.points)
			q.liveBytes += int64(sl.size)
		}
	}
	q.nextSeq = next
	// Segments acknowledged in full go, except the last one, which takes
	// the appends.
	for i := len(q.segs) - 2; i >= 0; i-- {
		if q.segs[i].live == 0 {
			q.deleteSegment(i)
		}
	}
	if len(q.segs) == 0 {
		if err := q.rotate(); err != nil {
			return err
		}
	}
	// A smaller MaxBytes than the last run's applies at once.
	if err := q.makeRoom(0); err != nil {
		return err
	}
	q.log.Info("queue opened", "entries", q.live, "points", q.livePoints, "bytes", q.diskBytes,
		"segments", len(q.segs), "next_seq", q.nextSeq)
	return nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// openSegment opens and checks one segment file. A torn tail is cut off; a
// file damaged elsewhere is moved to quarantine/ and replaced by a copy of
// its intact records; a file that is not a segment at all is quarantined
// whole (nil segment). Records must have seq >= minSeq.
func (q *Queue) openSegment(name string, base, minSeq uint64) (*segment, error) {
	path := filepath.Join(q.opt.Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open queue segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open queue segment: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		// Written by an older agent (0644): private like all state.
		if err := f.Chmod(filePerm); err != nil {
			f.Close()
			return nil, fmt.Errorf("open queue segment: %w", err)
		}
	}
	hdr := make([]byte, segHeaderSize)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, segHeaderSize), hdr); err != nil || !validSegHeader(hdr, base) {
		f.Close()
		return nil, q.quarantine(name, "not a queue segment (bad or missing header)")
	}
	res, err := scanSegment(f, st.Size(), max(minSeq, base))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read queue segment %s: %w", name, err)
	}
	switch {
	case len(res.damaged) > 0:
		f.Close()
		return q.salvage(name, base, minSeq, res)
	case res.tail >= 0:
		q.log.Warn("cutting a torn or damaged tail off a queue segment (a write the process or machine did not finish)",
			"file", name, "offset", res.tail, "bytes", st.Size()-res.tail)
		if err := f.Truncate(res.tail); err != nil {
			f.Close()
			return nil, fmt.Errorf("cut torn tail of %s: %w", name, err)
		}
	}
	return &segment{base: base, path: path, f: f, size: res.end, slots: res.slots}, nil
}

func validSegHeader(hdr []byte, base uint64) bool {
	b, ok := parseSegHeader(hdr)
	return ok && b == base
}

// scanResult is what a scan of one segment found.
type scanResult struct {
	slots   []slot
	damaged [][2]int64 // bad spans followed by intact records
	tail    int64      // start of a bad span running to the end, or -1
	end     int64      // end of the last intact record
}

// scanSegment reads every record of a segment, checking header and body
// CRCs, streaming through a 1 MiB buffer so that memory does not depend on
// the segment or record size. After a damaged header it searches forward for
// the next intact one.
func scanSegment(f *os.File, size int64, minSeq uint64) (scanResult, error) {
	res := scanResult{tail: -1, end: segHeaderSize}
	pos := int64(segHeaderSize)
	br := bufio.NewReaderSize(io.NewSectionReader(f, pos, size-pos), 1<<20)
	hdr := make([]byte, recHeaderSize)
	trailer := make([]byte, 4)
	crc := crc32.New(castagnoli)
	bad := int64(-1)
	markBad := func(at int64) {
		if bad < 0 {
			bad = at
		}
	}
	for pos < size {
		if size-pos < recHeaderSize {
			markBad(pos)
			break
		}
		if _, err := io.ReadFull(br, hdr); err != nil {
			return res, err
		}
		h, ok := parseRecHeader(hdr)
		if !ok || h.seq < minSeq {
			markBad(pos)
			next, err := findHeader(f, pos+1, size, minSeq)
			if err != nil {
				return res, err
			}
			if next < 0 {
				break
			}
			pos = next
			br.Reset(io.NewSectionReader(f, pos, size-pos))
			continue
		}
		end := pos + recHeaderSize + int64(h.bodyLen)
		if end > size || end > math.MaxUint32 {
			markBad(pos) // torn: the write did not finish
			break
		}
		crc.Reset()
		if _, err := io.CopyN(crc, br, int64(h.bodyLen)-4); err != nil {
			return res, err
		}
		if _, err := io.ReadFull(br, trailer); err != nil {
			return res, err
		}
		if crc.Sum32() != binary.LittleEndian.Uint32(trailer) {
			markBad(pos)
			pos = end
			continue
		}
		if bad >= 0 {
			res.damaged = append(res.damaged, [2]int64{bad, pos})
			bad = -1
		}
		res.slots = append(res.slots, slot{seq: h.seq, off: uint32(pos), size: uint32(end - pos), points: h.points})
		minSeq = h.seq + 1
		res.end = end
		pos = end
	}
	res.tail = bad
	return res, nil
}

// findHeader returns the offset of the first intact record header at or
// after from, or -1.
func findHeader(f *os.File, from, size int64, minSeq uint64) (int64, error) {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], recMagic)
	const chunk = 64 << 10
	buf := make([]byte, chunk+recHeaderSize)
	for at := from; at+recHeaderSize <= size; at += chunk {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-at)], at)
		if err != nil && !errors.Is(err, io.EOF) {
			return -1, err
		}
		b := buf[:n]
		for i := 0; i+recHeaderSize <= len(b) && i < chunk; {
			j := bytes.Index(b[i:], magic[:])
			if j < 0 || i+j >= chunk {
				break
			}
			i += j
			if h, ok := parseRecHeader(b[i : i+recHeaderSize]); ok && h.seq >= minSeq {
				return at + int64(i), nil
			}
			i++
		}
	}
	return -1, nil
}

// salvage moves a damaged segment to quarantine/ and puts a copy of its
// intact records in its place.
func (q *Queue) salvage(name string, base, minSeq uint64, res scanResult) (*segment, error) {
	path := filepath.Join(q.opt.Dir, name)
	lost := int64(0)
	for _, d := range res.damaged {
		lost += d[1] - d[0]
	}
	tmp := path + ".tmp"
	if err := copyRecords(path, tmp, base, res.slots); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("salvage queue segment %s: %w", name, err)
	}
	if err := q.quarantine(name, fmt.Sprintf("damaged records (%d bytes in %d places); %d intact records kept",
		lost, len(res.damaged), len(res.slots))); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("salvage queue segment %s: %w", name, err)
	}
	if err := statefile.SyncDir(q.opt.Dir); err != nil {
		return nil, fmt.Errorf("salvage queue segment %s: %w", name, err)
	}
	s, err := q.openSegment(name, base, minSeq)
	if err == nil && s != nil && len(s.slots) != len(res.slots) {
		return nil, fmt.Errorf("salvage queue segment %s: copy has %d records, want %d", name, len(s.slots), len(res.slots))
	}
	return s, err
}

func copyRecords(src, dst string, base uint64, slots []slot) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	w.Write(segHeader(base))
	for _, sl := range slots {
		if _, err := io.Copy(w, io.NewSectionReader(in, int64(sl.off), int64(sl.size))); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Sync()
}

// quarantine moves a file of the queue directory to quarantine/, keeping it
// for inspection, and counts it.
func (q *Queue) quarantine(name, reason string) error {
	qdir := filepath.Join(q.opt.Dir, quarantineDir)
	if err := os.MkdirAll(qdir, dirPerm); err != nil {
		return fmt.Errorf("quarantine %s: %w", name, err)
	}
	dst := filepath.Join(qdir, fmt.Sprintf("%s.%d", name, time.Now().UnixNano()))
	if err := os.Rename(filepath.Join(q.opt.Dir, name), dst); err != nil {
		return fmt.Errorf("quarantine %s: %w", name, err)
	}
	q.quarantined++
	q.log.Error("moved a damaged queue file to quarantine", "file", name, "to", dst, "reason", reason)
	return nil
}
