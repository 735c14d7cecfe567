package queue

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// On disk, a queue directory holds segment files named by the first sequence
// number they may hold ("00000000000000000042.seg"). A segment starts with a
// 16-byte header (segMagic, base seq) followed by records:
//
//	record = header(40 bytes) body
//	header = magic:u32 bodyLen:u32 seq:u64 points:u32 minSec:i64 maxSec:i64 crc:u32
//
// all little-endian. The header CRC (crc32c over its first 36 bytes) makes the
// length trustworthy, so a damaged body can be skipped exactly; the body is a
// points blob (see codec.go) with its own CRC. minSec and maxSec are the time
// range of the record's points in unix seconds, so that the bound can report
// what it dropped without decoding.
const (
	segMagic      = "PMTAQSG1"
	segHeaderSize = 16
	recMagic      = 0x52514d50 // "PMQR"
	recHeaderSize = 40
	segSuffix     = ".seg"
	// maxBody bounds a record body; a header claiming more is damaged.
	maxBody = 1 << 30
)

type recHeader struct {
	bodyLen uint32
	seq     uint64
	points  uint32
	minSec  int64
	maxSec  int64
}

// putRecHeader writes h into b[:recHeaderSize].
func putRecHeader(b []byte, h recHeader) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], recMagic)
	le.PutUint32(b[4:], h.bodyLen)
	le.PutUint64(b[8:], h.seq)
	le.PutUint32(b[16:], h.points)
	le.PutUint64(b[20:], uint64(h.minSec))
	le.PutUint64(b[28:], uint64(h.maxSec))
	le.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
}

// parseRecHeader reads a record header, reporting whether it is intact.
func parseRecHeader(b []byte) (recHeader, bool) {
	if len(b) < recHeaderSize {
		return recHeader{}, false
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != recMagic || le.Uint32(b[36:]) != crc32.Checksum(b[:36], castagnoli) {
		return recHeader{}, false
	}
	h := recHeader{
		bodyLen: le.Uint32(b[4:]),
		seq:     le.Uint64(b[8:]),
		points:  le.Uint32(b[16:]),
		minSec:  int64(le.Uint64(b[20:])),
		maxSec:  int64(le.Uint64(b[28:])),
	}
	if h.bodyLen < 5 || h.bodyLen > maxBody {
		return recHeader{}, false
	}
	return h, true
}

// timeRange returns the unix-second range of the points' times, ignoring
// zero times; (0, 0) when no point has a time.
func timeRange(points []agent.Point) (lo, hi int64) {
	first := true
	for i := range points {
		t := points[i].Time
		if t.IsZero() {
			continue
		}
		s := t.Unix()
		if first || s < lo {
			lo = s
		}
		if first || s > hi {
			hi = s
		}
		first = false
	}
	return lo, hi
}

// encodeRecord returns one whole record (header and body) for points with
// sequence number 0; setRecSeq fills the number in once it is assigned.
func encodeRecord(buf []byte, points []agent.Point) []byte {
	buf = append(buf[:0], make([]byte, recHeaderSize)...)
	buf = AppendPoints(buf, points)
	lo, hi := timeRange(points)
	putRecHeader(buf, recHeader{
		bodyLen: uint32(len(buf) - recHeaderSize),
		points:  uint32(len(points)),
		minSec:  lo,
		maxSec:  hi,
	})
	return buf
}

// setRecSeq sets the sequence number of an encoded record and its header CRC.
func setRecSeq(rec []byte, seq uint64) {
	binary.LittleEndian.PutUint64(rec[8:], seq)
	binary.LittleEndian.PutUint32(rec[36:], crc32.Checksum(rec[:36], castagnoli))
}

func segHeader(base uint64) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint64(b[8:], base)
	return b
}

func parseSegHeader(b []byte) (base uint64, ok bool) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]), true
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// parseSegName returns the base of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil && base > 0
}
