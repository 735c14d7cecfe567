package acct

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
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

// aggEntry is one tag set's sums within an interval, its key decoded (see
// aggregator.entries).
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
// []byte converted in place, which does not allocate. The packed key is
// the only copy of a tag set while the interval is open — its strings are
// decoded when it closes (entries) — so that an open tag set costs its key
// and its sums, about 120 bytes: a catch-up holds thousands per interval.
type interval struct {
	start int64
	acct  map[string]*aggVal
	diag  map[string]*diagEntry
}

func newInterval(start int64) *interval {
	return &interval{start: start, acct: make(map[string]*aggVal), diag: make(map[string]*diagEntry)}
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

// decodeKey returns the tag set packed by appendAcctKey, its strings
// interned and its isp looked up from its domain, as add would have made it.
// It allocates only for a value not seen before.
func (a *aggregator) decodeKey(packed string) aggKey {
	k := aggKey{typ: recType(packed[0]), dsnClass: packed[1]}
	rest := packed[2:]
	part := func() string {
		var n, shift, w int
		for ; ; w++ {
			c := rest[w]
			n |= int(c&0x7f) << shift
			if c < 0x80 {
				w++
				break
			}
			shift += 7
		}
		v := rest[w : w+n]
		rest = rest[w+n:]
		return v
	}
	dom := a.domainOf(part())
	k.domain, k.isp = dom.name, dom.isp
	k.vmta, k.pool, k.sourceIP, k.bounceCat = a.internString(part()), a.internString(part()), a.internString(part()), a.internString(part())
	return k
}

// internString and domainOf are intern and domain for a part of a packed
// key, which they must not keep: a miss copies it.
func (a *aggregator) internString(s string) string {
	if v, ok := a.strs[s]; ok || s == "" {
		return v
	}
	return a.intern([]byte(s))
}

func (a *aggregator) domainOf(s string) domInfo {
	if d, ok := a.doms[s]; ok || s == "" {
		return d
	}
	return a.domain([]byte(s))
}

// entries returns an interval's tag sets with their keys decoded, in the
// order of their packed keys.
func (a *aggregator) entries(iv *interval) []aggEntry {
	out := make([]aggEntry, 0, len(iv.acct))
	for _, packed := range sortedKeys(iv.acct) {
		out = append(out, aggEntry{key: a.decodeKey(packed), aggVal: *iv.acct[packed]})
	}
	return out
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
	views      []*view
	fillIP     map[string][]byte // vmta → source IP, for records without one
	fillPool   map[string][]byte // vmta → pool, for records without one
	open       []*interval       // ascending by start
	closedUpTo int64
	closedSet  bool
	strs       map[string]string
	doms       map[string]domInfo
	diagBuf    []byte
	keyBuf     []byte
	safeBuf    [6][]byte // SafeTag copies of a record's values, when needed

	// verdicts, when set, judges the closed intervals (see
	// appendVerdicts); muted, its points are not emitted (a replayed cut:
	// the restart's window is emptier than the first time's, and its points
	// would overwrite those, if they reached a sink, with worse ones);
	// changes are the verdicts' changes not yet logged.
	verdicts    *verdict.Window
	muted       bool
	changes     []verdict.Change
	changesOver int // changes to log beyond maxChanges, counted only

	records  int64 // records added
	late     int64 // records added to a later interval than their own
	folded   int64 // diag patterns folded into "other"
	inOpen   int64 // records in the open intervals
	emitted  int64 // records in the points of closed intervals
	restored int64 // records that restores put into (or took out of) the open intervals
}

// newAggregator returns an aggregator that rolls closed intervals up into
// views (the default views if none).
func newAggregator(iv time.Duration, topDiag int, isp *agent.ISPMap, views ...View) *aggregator {
	sec := int64(iv / time.Second)
	if sec < 1 {
		sec = 1
	}
	if len(views) == 0 {
		views = DefaultViews()
	}
	return &aggregator{
		iv:      sec,
		topDiag: topDiag,
		isp:     isp,
		views:   newViews(views),
		strs:    make(map[string]string),
		doms:    make(map[string]domInfo),
	}
}

// reset drops the open intervals, what was closed and the domains the views
// admitted, as at a first start;
// the records dropped count as taken out of the restored ones.
func (a *aggregator) reset() {
	a.open, a.closedUpTo, a.closedSet = nil, 0, false
	a.restoreViews(nil)
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

// fillFrom sets the vmta → source IP and vmta → pool maps that fill records
// lacking those fields.
func (a *aggregator) fillFrom(sourceIPs, pools map[string]string) {
	conv := func(m map[string]string) map[string][]byte {
		if len(m) == 0 {
			return nil
		}
		out := make(map[string][]byte, len(m))
		for k, v := range m {
			out[k] = []byte(v)
		}
		return out
	}
	a.fillIP, a.fillPool = conv(sourceIPs), conv(pools)
}

// add counts one parsed record. Once a tag set has been seen in an interval
// this costs no allocation.
func (a *aggregator) add(r *record) {
	iv := a.intervalFor(r.timeLogged)
	a.records++
	a.inOpen++
	class := dsnClass(r.dsnStatus)
	if len(r.vmta) > 0 {
		if len(r.sourceIP) == 0 && a.fillIP != nil {
			r.sourceIP = a.fillIP[string(r.vmta)]
		}
		if len(r.pool) == 0 && a.fillPool != nil {
			r.pool = a.fillPool[string(r.vmta)]
		}
	}
	domain, vmta, pool := a.safe(0, r.domain), a.safe(1, r.vmta), a.safe(2, r.pool)
	sourceIP, bounceCat := a.safe(3, r.sourceIP), a.safe(4, r.bounceCat)
	a.keyBuf = appendAcctKey(a.keyBuf[:0], r.typ, class, domain, vmta, pool, sourceIP, bounceCat)
	e := iv.acct[string(a.keyBuf)]
	if e == nil {
		e = &aggVal{}
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
		isp := a.domain(domain).isp
		a.keyBuf = appendDiagKey(a.keyBuf[:0], r.typ, isp, pattern)
		d := iv.diag[string(a.keyBuf)]
		if d == nil {
			d = &diagEntry{typ: r.typ, isp: isp, pattern: a.intern(pattern)}
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

// closeEach closes the intervals before boundary one at a time and hands
// each one's points to send as they are made, so that a backfill holds one
// interval's points at a time, not a window's, and a slow sink holds the
// reader back after each interval. The result is that of closeBefore.
func (a *aggregator) closeEach(boundary int64, send func([]agent.Point)) {
	boundary = floorDiv(boundary, a.iv) * a.iv
	for len(a.open) > 0 && a.open[0].start < boundary {
		pts, _ := a.closeBefore(a.open[0].start + a.iv)
		send(pts)
	}
}

// closeAll closes every open interval.
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

// appendPoints turns a closed interval into the points of every view and
// the diag points, in a fixed order, so that a replay emits the very same
// batch.
func (a *aggregator) appendPoints(pts []agent.Point, iv *interval) []agent.Point {
	ts := time.Unix(iv.start, 0).UTC()
	entries := a.entries(iv)
	for _, v := range a.views {
		pts = v.appendPoints(pts, entries, iv.start, ts, a.iv)
	}
	pts = a.appendDiagPoints(pts, iv, ts)
	if a.verdicts != nil {
		pts = a.appendVerdicts(pts, iv.start, entries)
	}
	return pts
}

// maxChanges bounds the verdict changes kept for the log between two
// reads (takeChanges); past it the rest are counted, not kept. Only the
// changes the log writes are kept (see logged): most changes are not (the
// IPs of a pool turning pool_wide), and they must not crowd out one that is.
const maxChanges = 1000

// appendVerdicts hands a closed interval's attempts — d, t and b records
// with a source IP — to the verdict window and appends the points of the
// steps it completed.
func (a *aggregator) appendVerdicts(pts []agent.Point, start int64, entries []aggEntry) []agent.Point {
	counts := make(map[verdict.Key]verdict.Counts)
	for i := range entries {
		e := &entries[i]
		if e.key.sourceIP == "" {
			continue // no IP to judge
		}
		var c verdict.Counts
		switch e.key.typ {
		case typeD:
			c.Attempts = e.count
		case typeT:
			c.Attempts, c.Deferred = e.count, e.count
		case typeB:
			c.Attempts, c.Bounced = e.count, e.count
		default:
			continue
		}
		k := verdict.Key{ISP: e.key.isp, Pool: e.key.pool, SourceIP: e.key.sourceIP}
		sum := counts[k]
		sum.Attempts += c.Attempts
		sum.Deferred += c.Deferred
		sum.Bounced += c.Bounced
		counts[k] = sum
	}
	for _, res := range a.verdicts.Observe(start, start+a.iv, counts) {
		if !a.muted {
			pts = append(pts, a.verdicts.Points(res)...)
		}
		for i := range res.Changes {
			switch c := &res.Changes[i]; {
			case !logged(c):
			case len(a.changes) < maxChanges:
				a.changes = append(a.changes, *c)
			default:
				a.changesOver++
			}
		}
	}
	return pts
}

// takeChanges returns the verdict changes to log since the last call, and
// how many more there were beyond maxChanges.
func (a *aggregator) takeChanges() ([]verdict.Change, int) {
	ch, over := a.changes, a.changesOver
	a.changes, a.changesOver = nil, 0
	return ch, over
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
