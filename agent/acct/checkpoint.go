package acct

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

const (
	checkpointName    = "acct-checkpoint.json"
	checkpointVersion = 1
)

// checkpointFile is the one file in StateDir. Snapshot is the state after the
// last batch whose Done was called (files, their offsets and columns, and the
// aggregator's open intervals: one consistent picture). Pending lists the
// cuts made since — the points at which intervals were closed and emitted but
// not yet confirmed — so that after a crash the tailer closes exactly the
// same intervals at exactly the same offsets and re-emits identical points;
// confirmed cuts behind an unconfirmed one may be folded into a jump (see
// cut).
type checkpointFile struct {
	Version  int             `json:"version"`
	Seq      uint64          `json:"seq"`
	Snapshot json.RawMessage `json:"snapshot"`
	Pending  []cut           `json:"pending,omitempty"`
	// TimesChecked marks a checkpoint written by a tailer that refuses
	// implausible times; an older one may have closed intervals far into
	// the future (see unclampFuture).
	TimesChecked bool `json:"times_checked,omitempty"`
}

// snapshot is the tailer's whole resumable state.
type snapshot struct {
	Files []fileState `json:"files"`
	Agg   aggState    `json:"agg"`
}

type fileState struct {
	FP       []byte   `json:"fp"`
	Path     string   `json:"path"`
	Offset   int64    `json:"offset"`
	Header   []string `json:"header,omitempty"`
	Dev      uint64   `json:"dev,omitempty"`
	Ino      uint64   `json:"ino,omitempty"`
	Skipping bool     `json:"skipping,omitempty"`
}

// cut records one closing of intervals: the offset of every file that was
// read since the previous cut (a file not listed did not move) and the
// closedUpTo the aggregator moved to.
//
// A cut with a Snapshot is a jump instead: it stands for a run of cuts up to
// Seq whose batches were all confirmed while an earlier one was not, and the
// replay restores the state after them from the snapshot rather than
// re-reading and re-emitting them (see boundPendingLocked).
type cut struct {
	Seq        uint64          `json:"seq"`
	ClosedUpTo int64           `json:"closed_up_to"`
	Files      []cutFile       `json:"files,omitempty"`
	Snapshot   json.RawMessage `json:"snapshot,omitempty"`
}

// cutFile names a file by a hash of its fingerprint, which keeps the journal
// small however many cuts are waiting for their Done.
type cutFile struct {
	FPLen  int    `json:"fp_len"`
	FPSum  string `json:"fp_sum"`
	Offset int64  `json:"offset"`
}

func fpSum(fp []byte) string {
	sum := sha256.Sum256(fp)
	return hex.EncodeToString(sum[:12])
}

// matches reports whether a file fingerprinted fp is the file of the cut.
func (c cutFile) matches(fp []byte) bool {
	return len(fp) >= c.FPLen && fpSum(fp[:c.FPLen]) == c.FPSum
}

type aggState struct {
	ClosedUpTo int64           `json:"closed_up_to"`
	ClosedSet  bool            `json:"closed_set"`
	Intervals  []intervalState `json:"intervals,omitempty"`
	// Views holds the domains each capped view admitted today.
	Views []viewState `json:"views,omitempty"`
}

type intervalState struct {
	Start int64       `json:"start"`
	Acct  []acctState `json:"acct,omitempty"`
	Diag  []diagState `json:"diag,omitempty"`
}

type acctState struct {
	Type      string `json:"t"`
	Domain    string `json:"d,omitempty"`
	ISP       string `json:"i,omitempty"`
	Vmta      string `json:"v,omitempty"`
	Pool      string `json:"p,omitempty"`
	SourceIP  string `json:"s,omitempty"`
	BounceCat string `json:"b,omitempty"`
	DsnClass  string `json:"c,omitempty"`
	Count     int64  `json:"n"`
	Bytes     int64  `json:"by,omitempty"`
	QSum      int64  `json:"qs,omitempty"`
	QMax      int64  `json:"qm,omitempty"`
}

type diagState struct {
	Type    string `json:"t"`
	ISP     string `json:"i,omitempty"`
	Pattern string `json:"p"`
	Count   int64  `json:"n"`
}

// restore replaces the aggregator's open intervals with a saved state.
func (a *aggregator) restore(s aggState) error {
	before := a.inOpen
	defer func() {
		// The records of the state taken over count as restored (those
		// of the state it replaced as taken out), so that records added
		// plus restored always equal records emitted plus still open.
		a.inOpen = 0
		for _, iv := range a.open {
			for _, e := range iv.acct {
				a.inOpen += e.count
			}
		}
		a.restored += a.inOpen - before
	}()
	a.open = a.open[:0]
	a.closedUpTo, a.closedSet = s.ClosedUpTo, s.ClosedSet
	a.restoreViews(s.Views)
	for _, is := range s.Intervals {
		if is.Start%a.iv != 0 {
			return fmt.Errorf("interval start %d is not a multiple of the %d s interval", is.Start, a.iv)
		}
		iv := a.openAt(is.Start)
		for _, e := range is.Acct {
			typ, ok := parseType([]byte(e.Type))
			if !ok {
				return fmt.Errorf("interval %d: record type %q", is.Start, e.Type)
			}
			var class byte
			if len(e.DsnClass) == 1 {
				class = e.DsnClass[0]
			}
			k := aggKey{typ: typ, dsnClass: class, domain: e.Domain, isp: e.ISP, vmta: e.Vmta,
				pool: e.Pool, sourceIP: e.SourceIP, bounceCat: e.BounceCat}
			key := appendAcctKey(nil, typ, class, k.domain, k.vmta, k.pool, k.sourceIP, k.bounceCat)
			iv.acct[string(key)] = &aggVal{count: e.Count, bytes: e.Bytes, qsum: e.QSum, qmax: e.QMax}
		}
		for _, e := range is.Diag {
			typ, ok := parseType([]byte(e.Type))
			if !ok {
				return fmt.Errorf("interval %d: diag record type %q", is.Start, e.Type)
			}
			key := appendDiagKey(nil, typ, e.ISP, e.Pattern)
			iv.diag[string(key)] = &diagEntry{typ: typ, isp: e.ISP, pattern: e.Pattern, count: e.Count}
		}
	}
	return nil
}

// errCorrupt marks a checkpoint that exists but cannot be used.
var errCorrupt = errors.New("corrupt checkpoint")

// loadCheckpoint reads the checkpoint in dir; (nil, nil) means there is none.
func loadCheckpoint(dir string) (*checkpointFile, *snapshot, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var cf checkpointFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if cf.Version != checkpointVersion {
		return nil, nil, fmt.Errorf("%w: version %d", errCorrupt, cf.Version)
	}
	var snap snapshot
	if err := json.Unmarshal(cf.Snapshot, &snap); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot: %w", errCorrupt, err)
	}
	return &cf, &snap, nil
}

// quarantineCheckpoint moves a corrupt checkpoint aside, keeping it for a
// human to look at, so that the tailer can start afresh.
func quarantineCheckpoint(dir string, now time.Time) (string, error) {
	from := filepath.Join(dir, checkpointName)
	to := from + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("move corrupt checkpoint aside: %w", err)
	}
	return to, nil
}

// checkpointParts returns cf as JSON in three parts, buf[:n], cf.Snapshot
// and buf[n:]: the very bytes json.Marshal writes, without encoding or
// copying the snapshot, which is JSON already (json.Marshal would validate
// and copy it: megabytes per cut while a backlog with many tag sets is
// read). The small parts are written over buf, which the caller may reuse.
func checkpointParts(buf []byte, cf *checkpointFile) (_ []byte, n int, err error) {
	buf = fmt.Appendf(buf[:0], `{"version":%d,"seq":%d,"snapshot":`, cf.Version, cf.Seq)
	n = len(buf)
	if len(cf.Pending) > 0 {
		pending, err := json.Marshal(cf.Pending)
		if err != nil {
			return buf, 0, fmt.Errorf("encode checkpoint: %w", err)
		}
		buf = append(buf, `,"pending":`...)
		buf = append(buf, pending...)
	}
	if cf.TimesChecked {
		buf = append(buf, `,"times_checked":true`...)
	}
	return append(buf, '}'), n, nil
}

// writeFileAtomic replaces dir/name with the parts through
// statefile.WriteAtomicParts (temp file, fsync, rename, fsync of the
// directory), so that a crash leaves either the old or the new content, and
// names the file in its errors.
func writeFileAtomic(dir, name string, parts ...[]byte) error {
	err := statefile.WriteAtomicParts(filepath.Join(dir, name), 0o600, parts...)
	if err == nil {
		return nil
	}
	var ds *statefile.DirSyncError
	if errors.As(err, &ds) {
		return fmt.Errorf("sync dir of %s: %w", name, err)
	}
	return fmt.Errorf("write %s: %w", name, err)
}
