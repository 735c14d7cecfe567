package verdict

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// stateVersion is the format of MarshalState.
const stateVersion = 1

// savedState is a window's contents as MarshalState writes them: the keys
// once, each step's counts by key index.
type savedState struct {
	Version int   `json:"version"`
	WindowS int64 `json:"window_s"`
	EveryS  int64 `json:"every_s"`
	// UpTo is the caller's mark of how far the window has seen (the
	// tailer's closed-up-to time); RestoreState hands it back.
	UpTo     int64        `json:"up_to"`
	Origin   int64        `json:"origin"`
	Next     int64        `json:"next"`
	Seen     int64        `json:"seen"`
	CurStart int64        `json:"cur_start"`
	CurSet   bool         `json:"cur_set"`
	Keys     [][3]string  `json:"keys"` // isp, pool, source IP
	Cur      [][4]int64   `json:"cur"`  // key, attempts, deferred, bounced
	Steps    []savedStep  `json:"steps"`
	Last     []savedAlarm `json:"last,omitempty"`
}

type savedStep struct {
	Start   int64      `json:"start"`
	Entries [][4]int64 `json:"entries"`
}

type savedAlarm struct {
	Key     [3]string `json:"key"`
	Verdict Verdict   `json:"verdict"`
}

// MarshalState returns the window's contents, for RestoreState in the next
// process: what the window holds, and the alarm each row last had (so that
// a restart logs no change that did not happen). upTo is the caller's mark
// of how far the window has seen.
func (w *Window) MarshalState(upTo int64) ([]byte, error) {
	st := savedState{Version: stateVersion, WindowS: w.length, EveryS: w.every, UpTo: upTo,
		Origin: w.origin, Next: w.next, Seen: w.seen, CurStart: w.curStart, CurSet: w.curSet}
	if !w.started {
		return nil, errors.New("the window has seen nothing")
	}
	index := map[Key]int64{}
	key := func(k Key) int64 {
		i, ok := index[k]
		if !ok {
			i = int64(len(st.Keys))
			index[k] = i
			st.Keys = append(st.Keys, [3]string{k.ISP, k.Pool, k.SourceIP})
		}
		return i
	}
	for _, k := range sortedKeys(w.cur) {
		c := w.cur[k]
		st.Cur = append(st.Cur, [4]int64{key(k), c.Attempts, c.Deferred, c.Bounced})
	}
	for _, b := range w.buckets {
		s := savedStep{Start: b.start, Entries: make([][4]int64, 0, len(b.entries))}
		for _, e := range b.entries {
			s.Entries = append(s.Entries, [4]int64{key(w.keys[e.idx]), int64(e.a), int64(e.d), int64(e.b)})
		}
		st.Steps = append(st.Steps, s)
	}
	for _, k := range sortedKeys(w.last) {
		if v := w.last[k]; v != OK {
			st.Last = append(st.Last, savedAlarm{Key: [3]string{k.ISP, k.Pool, k.SourceIP}, Verdict: v})
		}
	}
	return json.Marshal(st)
}

func sortedKeys[V any](m map[Key]V) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// RestoreState makes an empty window hold what MarshalState saved, and
// returns the mark it was saved with. It refuses — the window stays empty
// — a state of other steps or another length (the settings changed), one
// that does not hold together, or a window that has seen something.
func (w *Window) RestoreState(b []byte) (upTo int64, err error) {
	if w.started {
		return 0, errors.New("the window is not empty")
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("saved window: %w", err)
	}
	switch {
	case st.Version != stateVersion:
		return 0, fmt.Errorf("saved window: version %d, want %d", st.Version, stateVersion)
	case st.WindowS != w.length || st.EveryS != w.every:
		return 0, fmt.Errorf("saved window: %d s in steps of %d s, now %d s in steps of %d s", st.WindowS, st.EveryS, w.length, w.every)
	case len(st.Keys) > MaxKeys:
		return 0, fmt.Errorf("saved window: %d keys, more than %d", len(st.Keys), MaxKeys)
	}
	keyOf := func(e [4]int64) (Key, Counts, error) {
		// e[2] + e[3] ≤ e[1] without the sum, which huge counts would wrap.
		if e[0] < 0 || e[0] >= int64(len(st.Keys)) || e[1] < 0 || e[2] < 0 || e[3] < 0 || e[2] > e[1] || e[3] > e[1]-e[2] {
			return Key{}, Counts{}, fmt.Errorf("saved window: bad entry %v", e)
		}
		k := st.Keys[e[0]]
		return Key{ISP: k[0], Pool: k[1], SourceIP: k[2]}, Counts{Attempts: e[1], Deferred: e[2], Bounced: e[3]}, nil
	}
	fresh := NewWindow(w.cfg)
	prev := int64(0)
	for i, s := range st.Steps {
		if i > 0 && s.Start <= prev || s.Start%w.every != 0 {
			return 0, fmt.Errorf("saved window: steps out of order at %d", s.Start)
		}
		prev = s.Start
		b := bucket{start: s.Start, entries: make([]entry, 0, len(s.Entries))}
		for _, e := range s.Entries {
			k, c, err := keyOf(e)
			if err != nil {
				return 0, err
			}
			idx := fresh.index(k)
			if idx < 0 {
				return 0, errors.New("saved window: more keys than a window holds")
			}
			en := entry{idx: idx, a: clamp32(c.Attempts), d: clamp32(c.Deferred), b: clamp32(c.Bounced)}
			sum := &fresh.sums[idx]
			sum.Attempts += int64(en.a)
			sum.Deferred += int64(en.d)
			sum.Bounced += int64(en.b)
			b.entries = append(b.entries, en)
		}
		fresh.buckets = append(fresh.buckets, b)
	}
	for _, e := range st.Cur {
		k, c, err := keyOf(e)
		if err != nil {
			return 0, err
		}
		fresh.cur[k] = &c
	}
	for _, a := range st.Last {
		if a.Verdict == IPSpecific || a.Verdict == PoolWide {
			fresh.last[Key{ISP: a.Key[0], Pool: a.Key[1], SourceIP: a.Key[2]}] = a.Verdict
		}
	}
	fresh.origin, fresh.started, fresh.next, fresh.seen = st.Origin, true, st.Next, st.Seen
	fresh.curStart, fresh.curSet = st.CurStart, st.CurSet
	fresh.emitted, fresh.dropped = w.emitted, w.dropped
	*w = *fresh
	return st.UpTo, nil
}
