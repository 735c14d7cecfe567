package acct

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// Measurement names of the data contract.
const (
	measAcct = "pmta_acct"
	measDiag = "pmta_acct_diag"
	// diagOther is the pattern that patterns beyond the top N fold into.
	diagOther = "other"
	// internCap bounds the string tables; past it they start over, which
	// only costs allocations, since interned strings stay valid.
	internCap = 1 << 16
)

// aggKey is one pmta_acct tag set within an interval.
type aggKey struct {
	typ       recType
	dsnClass  byte
	domain    string
	isp       string
	vmta      string
	pool      string
	sourceIP  string
	bounceCat string
}

// aggVal holds a tag set's sums. Queueing delay is summed in whole seconds
// as an integer so that sums do not depend on the order records came in:
// a replay must produce the very same values.
type aggVal struct {
	count, bytes, qsum, qmax int64
}

// aggEntry is one tag set's sums within an interval.
type aggEntry struct {
	key aggKey
	aggVal
}

type diagEntry struct {
	typ     recType
	isp     string
	pattern string
	count   int64
}

// interval is one open aggregation window [start, start+iv). Its maps are
// keyed by the tag values packed into bytes (see appendAcctKey): one hash of
// one short string per record instead of one per tag, and a lookup with a
// []byte converted in place, which does not allocate.
type interval struct {
	start int64
	acct  map[string]*aggEntry
	diag  map[string]*diagEntry
}

func newInterval(start int64) *interval {
	return &interval{start: start, acct: make(map[string]*aggEntry), diag: make(map[string]*diagEntry)}
}

// appendPart appends one length-prefixed value, so that packed keys of
// different tag values never collide.
func appendPart[T string | []byte](dst []byte, v T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func appendAcctKey[T string | []byte](dst []byte, typ recType, class byte, domain, vmta, pool, sourceIP, bounceCat T) []byte {
	dst = append(dst, byte(typ), class)
	dst = appendPart(dst, domain)
	dst = appendPart(dst, vmta)
	dst = appendPart(dst, pool)
	dst = appendPart(dst, sourceIP)
	return appendPart(dst, bounceCat)
}

func appendDiagKey[T string | []byte](dst []byte, typ recType, isp string, pattern T) []byte {
	dst = append(dst, byte(typ))
	dst = appendPart(dst, isp)
	return appendPart(dst, pattern)
}

type domInfo struct{ name, isp string }

// aggregator sums records into intervals by timeLogged. It is not safe for
// concurrent use; the tailer and the backfill each own one.
//
// Every interval with a start before closedUpTo is closed. A record whose
// interval is closed is late and goes into the interval starting at
// closedUpTo — the oldest that can still be open — so that it is counted
// exactly once and where it lands depends only on closedUpTo, never on the
// order in which files were read.
type aggregator struct {
	iv         int64 // interval length in seconds
	topDiag    int
	isp        *agent.ISPMap
	open       []*interval // ascending by start
	closedUpTo int64
	closedSet  bool
	strs       map[string]string
	doms       map[string]domInfo
	diagBuf    []byte
	keyBuf     []byte
	safeBuf    [6][]byte // SafeTag copies of a record's values, when needed

	records  int64 // records added
	late     int64 // records added to a later interval than their own
	folded   int64 // diag patterns folded into "other"
	inOpen   int64 // records in the open intervals
	emitted  int64 // records in the points of closed intervals
	restored int64 // records that restores put into (or took out of) the open intervals
}

func newAggregator(iv time.Duration, topDiag int, isp *agent.ISPMap) *aggregator {
	sec := int64(iv / time.Second)
	if sec < 1 {
		sec = 1
	}
	return &aggregator{
		iv:      sec,
		topDiag: topDiag,
		isp:     isp,
		strs:    make(map[string]string),
		doms:    make(map[string]domInfo),
	}
}

// reset drops the open intervals and what was closed, as at a first start;
// the records dropped count as taken out of the restored ones.
func (a *aggregator) reset() {
	a.open, a.closedUpTo, a.closedSet = nil, 0, false
	a.restored -= a.inOpen
	a.inOpen = 0
}

// satAdd adds two non-negative sums, stopping at the largest int64 instead
// of wrapping to a negative one: a dlvSize of 18 digits is a file's word,
// not a message's size.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// intern returns b as a string, allocating only the first time it is seen.
func (a *aggregator) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := a.strs[string(b)]; ok {
		return s
	}
	if len(a.strs) >= internCap {
		clear(a.strs)
	}
	s := string(b)
	a.strs[s] = s
	return s
}

func (a *aggregator) domain(b []byte) domInfo {
	if len(b) == 0 {
		return domInfo{}
	}
	if d, ok := a.doms[string(b)]; ok {
		return d
	}
	if len(a.doms) >= internCap {
		clear(a.doms)
	}
	name := string(b)
	d := domInfo{name: name, isp: a.isp.Lookup(name)}
	a.doms[name] = d
	return d
}

// intervalFor returns the open interval a record logged at ts belongs in,
// creating it if needed.
func (a *aggregator) intervalFor(ts int64) *interval {
	start := floorDiv(ts, a.iv) * a.iv
	if a.closedSet && start < a.closedUpTo {
		a.late++
		start = a.closedUpTo
	}
	return a.openAt(start)
}

func (a *aggregator) openAt(start int64) *interval {
	for i := len(a.open) - 1; i >= 0; i-- {
		switch iv := a.open[i]; {
		case iv.start == start:
			return iv
		case iv.start < start:
			n := newInterval(start)
			a.open = slices.Insert(a.open, i+1, n)
			return n
		}
	}
	n := newInterval(start)
	a.open = slices.Insert(a.open, 0, n)
	return n
}

// safe returns b as agent.SafeTag makes it — b itself in the common case of
// plain ASCII — so that a value written by a stranger (a recipient domain
// with a Latin-1 byte, a control character, 64 KB of it) is made safe before
// it becomes part of a tag set: two values that SafeTag makes equal are
// counted as one, and the checkpoint holds only valid UTF-8.
func (a *aggregator) safe(slot int, b []byte) []byte {
	if agent.IsPlainTag(b) {
		return b
	}
	a.safeBuf[slot] = agent.AppendSafeTag(a.safeBuf[slot][:0], b)
	return a.safeBuf[slot]
}

// add counts one parsed record. Once a tag set has been seen in an interval
// this costs no allocation.
func (a *aggregator) add(r *record) {
	iv := a.intervalFor(r.timeLogged)
	a.records++
	a.inOpen++
	class := dsnClass(r.dsnStatus)
	domain, vmta, pool := a.safe(0, r.domain), a.safe(1, r.vmta), a.safe(2, r.pool)
	sourceIP, bounceCat := a.safe(3, r.sourceIP), a.safe(4, r.bounceCat)
	a.keyBuf = appendAcctKey(a.keyBuf[:0], r.typ, class, domain, vmta, pool, sourceIP, bounceCat)
	e := iv.acct[string(a.keyBuf)]
	if e == nil {
		dom := a.domain(domain)
		e = &aggEntry{key: aggKey{
			typ:       r.typ,
			dsnClass:  class,
			domain:    dom.name,
			isp:       dom.isp,
			vmta:      a.intern(vmta),
			pool:      a.intern(pool),
			sourceIP:  a.intern(sourceIP),
			bounceCat: a.intern(bounceCat),
		}}
		iv.acct[string(a.keyBuf)] = e
	}
	e.count++
	e.bytes = satAdd(e.bytes, r.size)
	if r.hasQueued {
		q := max(r.timeLogged-r.timeQueued, 0)
		e.qsum = satAdd(e.qsum, q)
		e.qmax = max(e.qmax, q)
	}
	if r.typ.hasDiag() && len(r.dsnDiag) > 0 {
		a.diagBuf = appendDiagPattern(a.diagBuf[:0], r.dsnDiag)
		pattern := a.safe(5, a.diagBuf)
		a.keyBuf = appendDiagKey(a.keyBuf[:0], r.typ, e.key.isp, pattern)
		d := iv.diag[string(a.keyBuf)]
		if d == nil {
			d = &diagEntry{typ: r.typ, isp: e.key.isp, pattern: a.intern(pattern)}
			iv.diag[string(a.keyBuf)] = d
		}
		d.count++
	}
}

// closeBefore closes every open interval that starts before boundary and
// returns their points. closedUpTo moves to the end of the newest interval it
// closed, so later records for those times go to the oldest interval still
// open — an emitted interval is never emitted again with other values. Times
// for which nothing was emitted stay open to records that arrive late (a file
// appearing with older data is counted at its own times, not lumped into the
// present). It reports whether the aggregator's state changed.
func (a *aggregator) closeBefore(boundary int64) ([]agent.Point, bool) {
	boundary = floorDiv(boundary, a.iv) * a.iv
	n := 0
	for n < len(a.open) && a.open[n].start < boundary {
		n++
	}
	if n == 0 {
		return nil, false
	}
	var pts []agent.Point
	for _, iv := range a.open[:n] {
		pts = a.appendPoints(pts, iv)
		for _, e := range iv.acct {
			a.inOpen -= e.count
			a.emitted += e.count
		}
	}
	if end := a.open[n-1].start + a.iv; !a.closedSet || end > a.closedUpTo {
		a.closedUpTo, a.closedSet = end, true
	}
	a.open = slices.Delete(a.open, 0, n)
	return pts, true
}

// closeAll closes every open interval: the end of a backfill.
func (a *aggregator) closeAll() ([]agent.Point, bool) {
	if len(a.open) == 0 {
		return nil, false
	}
	return a.closeBefore(a.open[len(a.open)-1].start + a.iv)
}

func dsnClassTag(c byte) string {
	switch c {
	case '2':
		return "2"
	case '4':
		return "4"
	case '5':
		return "5"
	}
	return ""
}

// sortedKeys returns a map's keys in order: the order points are emitted and
// saved in, fixed so that a replay emits the very same batch.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendPoints turns a closed interval into points in a fixed order, so that
// a replay emits the very same batch.
func (a *aggregator) appendPoints(pts []agent.Point, iv *interval) []agent.Point {
	ts := time.Unix(iv.start, 0).UTC()
	keys := sortedKeys(iv.acct)
	// One allocation for all tags and one for all fields of the interval,
	// instead of two per point.
	tags := make([]agent.Tag, 0, 8*len(keys))
	fields := make([]agent.Field, 0, 5*len(keys))
	for _, key := range keys {
		e := iv.acct[key]
		k := &e.key
		t0, f0 := len(tags), len(fields)
		// Tags in key order, so that NewPoint need not sort them.
		tags = append(tags,
			agent.Tag{Key: "bounce_cat", Value: k.bounceCat},
			agent.Tag{Key: "domain", Value: k.domain},
			agent.Tag{Key: "dsn_class", Value: dsnClassTag(k.dsnClass)},
			agent.Tag{Key: "isp", Value: k.isp},
			agent.Tag{Key: "pool", Value: k.pool},
			agent.Tag{Key: "source_ip", Value: k.sourceIP},
			agent.Tag{Key: "type", Value: k.typ.String()},
			agent.Tag{Key: "vmta", Value: k.vmta})
		fields = append(fields,
			agent.Field{Key: "count", Value: e.count},
			agent.Field{Key: "bytes", Value: e.bytes},
			agent.Field{Key: "queued_s_sum", Value: float64(e.qsum)},
			agent.Field{Key: "queued_s_max", Value: float64(e.qmax)},
			// The interval length travels with the point, so that a sink
			// can give a sum its start and end (OTLP) and a dashboard can
			// turn counts into rates.
			agent.Field{Key: "interval_s", Value: a.iv})
		pts = append(pts, agent.NewPoint(measAcct, tags[t0:len(tags):len(tags)], fields[f0:len(fields):len(fields)], ts))
	}
	return a.appendDiagPoints(pts, iv, ts)
}

type diagCount struct {
	pattern string
	count   int64
}

// appendDiagPoints keeps the topDiag patterns of each (type, isp) and folds
// the rest into "other".
func (a *aggregator) appendDiagPoints(pts []agent.Point, iv *interval, ts time.Time) []agent.Point {
	type group struct {
		typ recType
		isp string
	}
	groups := make(map[group][]diagCount)
	for _, d := range iv.diag {
		g := group{d.typ, d.isp}
		groups[g] = append(groups[g], diagCount{d.pattern, d.count})
	}
	order := make([]group, 0, len(groups))
	for g := range groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(x, y group) int {
		return cmp.Or(cmp.Compare(x.typ, y.typ), cmp.Compare(x.isp, y.isp))
	})
	for _, g := range order {
		list := groups[g]
		slices.SortFunc(list, func(x, y diagCount) int {
			return cmp.Or(cmp.Compare(y.count, x.count), cmp.Compare(x.pattern, y.pattern))
		})
		if len(list) > a.topDiag {
			var rest int64
			for _, d := range list[a.topDiag:] {
				rest += d.count
			}
			a.folded += int64(len(list) - a.topDiag)
			list = list[:a.topDiag]
			merged := false
			for i := range list {
				if list[i].pattern == diagOther {
					list[i].count += rest
					merged = true
				}
			}
			if !merged {
				list = append(list, diagCount{diagOther, rest})
			}
		}
		for _, d := range list {
			pts = append(pts, agent.NewPoint(measDiag, []agent.Tag{
				{Key: "diag", Value: d.pattern},
				{Key: "isp", Value: g.isp},
				{Key: "type", Value: g.typ.String()},
			}, []agent.Field{{Key: "count", Value: d.count}, {Key: "interval_s", Value: a.iv}}, ts))
		}
	}
	return pts
}
