package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// The points codec turns []agent.Point into one self-checking blob:
//
//	blob    = version:byte  npoints:uvarint  point*  crc32c:uint32le
//	point   = flags:byte  measurement:str  ntags:uvarint (key:str value:str)*
//	          nfields:uvarint (key:str type:byte value)*  [time]
//	str     = uvarint k: k>0 names string k-1 of the table built so far;
//	          k=0 is followed by uvarint length and the bytes, and adds them
//	          to the table (so every distinct string is stored once per blob)
//	time    = zigzag varint of the seconds since the previous point's time
//	          (the first point counts from 0), uvarint nanoseconds
//
// The CRC (Castagnoli, hardware-accelerated on amd64 and arm64) covers all
// bytes before it. Decoded times keep the instant, in UTC.
const codecVersion = 1

// Field value types on the wire.
const (
	typeInt    = 0
	typeFloat  = 1
	typeFalse  = 2
	typeTrue   = 3
	typeString = 4
	typeNil    = 5
)

// Point flags.
const flagTime = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every decoding error: the bytes are not what the
// encoder wrote.
var ErrCorrupt = errors.New("corrupt queue data")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// AppendPoints appends the encoding of points to dst and returns the result.
// Field values of types other than int64, float64, bool, string and nil are
// normalised as agent.AppendLineProtocol does: other integer types become
// int64 (a uint64 above MaxInt64 becomes float64), float32 becomes float64,
// anything else becomes its fmt.Sprint string.
func AppendPoints(dst []byte, points []agent.Point) []byte {
	start := len(dst)
	e := encoder{buf: dst, table: make(map[string]uint64, 64)}
	e.buf = append(e.buf, codecVersion)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(points)))
	var prevSec int64
	for i := range points {
		p := &points[i]
		var flags byte
		if !p.Time.IsZero() {
			flags |= flagTime
		}
		e.buf = append(e.buf, flags)
		e.str(p.Measurement)
		e.buf = binary.AppendUvarint(e.buf, uint64(len(p.Tags)))
		for _, t := range p.Tags {
			e.str(t.Key)
			e.str(t.Value)
		}
		e.buf = binary.AppendUvarint(e.buf, uint64(len(p.Fields)))
		for _, f := range p.Fields {
			e.str(f.Key)
			e.value(f.Value)
		}
		if flags&flagTime != 0 {
			sec := p.Time.Unix()
			e.buf = binary.AppendVarint(e.buf, sec-prevSec)
			e.buf = binary.AppendUvarint(e.buf, uint64(p.Time.Nanosecond()))
			prevSec = sec
		}
	}
	return binary.LittleEndian.AppendUint32(e.buf, crc32.Checksum(e.buf[start:], castagnoli))
}

type encoder struct {
	buf   []byte
	table map[string]uint64
}

func (e *encoder) str(s string) {
	if k, ok := e.table[s]; ok {
		e.buf = binary.AppendUvarint(e.buf, k)
		return
	}
	e.table[s] = uint64(len(e.table) + 1)
	e.buf = append(e.buf, 0)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) value(v any) {
	switch v := v.(type) {
	case int64:
		e.int(v)
	case int:
		e.int(int64(v))
	case int32:
		e.int(int64(v))
	case uint32:
		e.int(int64(v))
	case uint64:
		if v > math.MaxInt64 {
			e.float(float64(v))
		} else {
			e.int(int64(v))
		}
	case float64:
		e.float(v)
	case float32:
		e.float(float64(v))
	case bool:
		if v {
			e.buf = append(e.buf, typeTrue)
		} else {
			e.buf = append(e.buf, typeFalse)
		}
	case string:
		e.buf = append(e.buf, typeString)
		e.str(v)
	case nil:
		e.buf = append(e.buf, typeNil)
	default:
		e.buf = append(e.buf, typeString)
		e.str(fmt.Sprint(v))
	}
}

func (e *encoder) int(v int64) {
	e.buf = append(e.buf, typeInt)
	e.buf = binary.AppendVarint(e.buf, v)
}

func (e *encoder) float(v float64) {
	e.buf = append(e.buf, typeFloat)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v))
}

// checkBlob reports whether the blob's CRC matches, without decoding it.
func checkBlob(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	n := len(b) - 4
	return crc32.Checksum(b[:n], castagnoli) == binary.LittleEndian.Uint32(b[n:])
}

// DecodePoints decodes a blob written by AppendPoints. Damaged or foreign
// bytes give an error wrapping ErrCorrupt, never a panic. The points' strings
// share memory with each other but not with b.
func DecodePoints(b []byte) ([]agent.Point, error) {
	if !checkBlob(b) {
		return nil, corrupt("points checksum mismatch (%d bytes)", len(b))
	}
	return decodeBody(b[:len(b)-4])
}

// decodeBody decodes a blob without its CRC. It is separate so that the
// fuzzer can reach past the checksum.
func decodeBody(b []byte) ([]agent.Point, error) {
	d := decoder{buf: b}
	if v := d.byte(); v != codecVersion {
		return nil, corrupt("points codec version %d", v)
	}
	n := d.count(3) // a point takes at least 3 bytes
	if d.err != nil {
		return nil, d.err
	}
	points := make([]agent.Point, n)
	var prevSec int64
	for i := range points {
		p := &points[i]
		flags := d.byte()
		p.Measurement = d.str()
		if nt := d.count(2); nt > 0 {
			p.Tags = d.tags(nt)
			for j := range p.Tags {
				p.Tags[j] = agent.Tag{Key: d.str(), Value: d.str()}
			}
		}
		if nf := d.count(2); nf > 0 {
			p.Fields = d.fields(nf)
			for j := range p.Fields {
				p.Fields[j] = agent.Field{Key: d.str(), Value: d.value()}
			}
		}
		if flags&flagTime != 0 {
			sec := prevSec + d.varint()
			nsec := d.uvarint()
			if nsec >= 1e9 {
				d.fail("nanoseconds %d out of range", nsec)
			}
			p.Time = time.Unix(sec, int64(nsec)).UTC()
			prevSec = sec
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.buf) != 0 {
		return nil, corrupt("%d bytes after the last point", len(d.buf))
	}
	return points, nil
}

// decoder reads the body; the first error sticks and every later read
// returns zero values, so the decoding loop checks once per point.
type decoder struct {
	buf    []byte
	err    error
	table  []string
	tagBuf []agent.Tag
	fldBuf []agent.Field
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corrupt(format, args...)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) == 0 {
		d.fail("unexpected end")
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a length whose items take at least min bytes each, so that a
// damaged length cannot make the decoder allocate more than the input holds.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.buf)/min) {
		d.fail("count %d exceeds the %d bytes left", v, len(d.buf))
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	k := d.uvarint()
	if k > 0 {
		if k > uint64(len(d.table)) {
			d.fail("string %d not in table of %d", k, len(d.table))
			return ""
		}
		return d.table[k-1]
	}
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail("string of %d bytes exceeds the %d left", n, len(d.buf))
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	d.table = append(d.table, s)
	return s
}

func (d *decoder) value() any {
	switch t := d.byte(); t {
	case typeInt:
		return d.varint()
	case typeFloat:
		if len(d.buf) < 8 {
			d.fail("short float")
			return nil
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf))
		d.buf = d.buf[8:]
		return v
	case typeFalse:
		return false
	case typeTrue:
		return true
	case typeString:
		return d.str()
	case typeNil:
		return nil
	default:
		d.fail("field type %d", t)
		return nil
	}
}

// slabSize is the most tags or fields one allocation serves (fewer when the
// bytes left cannot hold that many). Points get capacity-limited windows of a
// slab, so a caller appending to one point's tags cannot overwrite the next
// point's.
const slabSize = 4096

func (d *decoder) tags(n int) []agent.Tag {
	if n > slabSize {
		return make([]agent.Tag, n)
	}
	if len(d.tagBuf) < n {
		d.tagBuf = make([]agent.Tag, max(n, min(slabSize, len(d.buf)/2)))
	}
	s := d.tagBuf[:n:n]
	d.tagBuf = d.tagBuf[n:]
	return s
}

func (d *decoder) fields(n int) []agent.Field {
	if n > slabSize {
		return make([]agent.Field, n)
	}
	if len(d.fldBuf) < n {
		d.fldBuf = make([]agent.Field, max(n, min(slabSize, len(d.buf)/2)))
	}
	s := d.fldBuf[:n:n]
	d.fldBuf = d.fldBuf[n:]
	return s
}
