package otlp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// stateFileName is the cumulative state's file inside Config.StateDir.
const stateFileName = "otlp-cumulative.json"

// stateVersion is the state file's format version.
const stateVersion = 1

// seriesIdle is how long a series may go without a new interval, measured
// against the newest interval in the state, before it is forgotten: domains
// and IPs come and go, and the state must not grow for ever. A forgotten
// series that comes back starts again from zero with a new start time, which
// OTLP readers take as a counter reset.
const seriesIdle = 7 * 24 * time.Hour

// cumSeries is one accounting series' running total.
type cumSeries struct {
	// Start is the first interval's start (Unix ns): the StartTime of every
	// cumulative point of the series.
	Start int64 `json:"start"`
	// Last is the start of the last interval added (Unix ns). Intervals
	// that do not start after it are replays and are not added again.
	Last    int64   `json:"last"`
	Int     int64   `json:"int,omitempty"`
	Float   float64 `json:"float,omitempty"`
	IsFloat bool    `json:"is_float,omitempty"`
}

func (c cumSeries) value() number {
	if c.IsFloat {
		return number{f: c.Float, isFloat: true}
	}
	return number{i: c.Int}
}

// cumState holds the running totals of the accounting sums, persisted in a
// JSON file that is replaced atomically. It is not safe for concurrent use;
// the sink's mutex guards it.
type cumState struct {
	path   string // "" keeps the state in memory only
	series map[string]cumSeries
	newest int64 // newest interval start seen, Unix ns
	dirty  bool
}

// stateFile is the on-disk form.
type stateFile struct {
	Version int                  `json:"version"`
	Series  map[string]cumSeries `json:"series"`
}

// loadState reads dir's state file. A missing file is an empty state. A file
// that cannot be read as a state is moved aside (quarantined) and the state
// starts empty, which readers see as a reset of every series: better than
// refusing to start. quarantined names the moved file, "" if none.
func loadState(dir string) (st *cumState, quarantined string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create state dir: %w", err)
	}
	st = &cumState{path: filepath.Join(dir, stateFileName), series: make(map[string]cumSeries)}
	data, err := os.ReadFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read cumulative state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != stateVersion {
		q := st.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(st.path, q); rerr != nil {
			return nil, "", fmt.Errorf("quarantine unreadable cumulative state: %w", rerr)
		}
		return st, q, nil
	}
	for k, s := range f.Series {
		st.series[k] = s
		st.newest = max(st.newest, s.Last)
	}
	return st, "", nil
}

// cumTx is the totals of one export, applied to the state only when the
// export got through (commit); a failed export leaves the state as it was,
// so that the retry adds the same intervals again.
type cumTx struct {
	st      *cumState
	pending map[string]cumSeries
}

func (st *cumState) begin() *cumTx {
	return &cumTx{st: st, pending: make(map[string]cumSeries)}
}

// add adds the sum of the interval starting at start to the series key and
// returns the new running total and the series' start time. fresh is false
// for a replay — an interval that does not start after the last one added —
// which is not added and should not be exported: its value is already in the
// total, and exporting an older time with a newer total would break the
// series.
func (tx *cumTx) add(key string, start time.Time, n number) (total number, seriesStart time.Time, fresh bool) {
	s, ok := tx.pending[key]
	if !ok {
		s, ok = tx.st.series[key]
	}
	at := start.UnixNano()
	if ok && at <= s.Last {
		return number{}, time.Time{}, false
	}
	if !ok {
		s = cumSeries{Start: at}
	}
	s.Last = at
	switch {
	case n.isFloat && !s.IsFloat: // a series that turns float stays float
		s.Float, s.Int, s.IsFloat = float64(s.Int)+n.f, 0, true
	case s.IsFloat:
		v := n.f
		if !n.isFloat {
			v = float64(n.i)
		}
		s.Float += v
	default:
		s.Int += n.i
	}
	tx.pending[key] = s
	return s.value(), time.Unix(0, s.Start), true
}

// commit applies the transaction to the state.
func (tx *cumTx) commit() {
	for k, s := range tx.pending {
		tx.st.series[k] = s
		tx.st.newest = max(tx.st.newest, s.Last)
	}
	if len(tx.pending) > 0 {
		tx.st.dirty = true
	}
	clear(tx.pending)
}

// expire forgets series idle for longer than seriesIdle and returns how many.
func (st *cumState) expire() int {
	cut := st.newest - int64(seriesIdle)
	n := 0
	for k, s := range st.series {
		if s.Last < cut {
			delete(st.series, k)
			n++
		}
	}
	if n > 0 {
		st.dirty = true
	}
	return n
}

// save writes the state if it changed: a temporary file, fsync, rename over
// the old file, fsync of the directory, so that a crash leaves either the old
// or the new state, never a torn one.
func (st *cumState) save() error {
	if !st.dirty || st.path == "" {
		return nil
	}
	data, err := json.Marshal(stateFile{Version: stateVersion, Series: st.series})
	if err != nil {
		return fmt.Errorf("encode cumulative state: %w", err)
	}
	if err := statefile.WriteAtomic(st.path, data, 0o600); err != nil {
		return fmt.Errorf("save cumulative state: %w", err)
	}
	st.dirty = false
	return nil
}
