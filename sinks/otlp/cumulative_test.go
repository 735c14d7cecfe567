package otlp

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestCumTxReplayAndCommit(t *testing.T) {
	st := &cumState{series: make(map[string]cumSeries)}
	tx := st.begin()
	v, start, fresh := tx.add("k", t0, number{i: 5})
	if !fresh || v.i != 5 || !start.Equal(t0) {
		t.Fatalf("first interval: %v %v %v", v, start, fresh)
	}
	if _, _, fresh := tx.add("k", t0, number{i: 5}); fresh {
		t.Error("the same interval twice in one transaction was added twice")
	}
	v, start, _ = tx.add("k", t0.Add(time.Minute), number{i: 2})
	if v.i != 7 || !start.Equal(t0) {
		t.Errorf("second interval: total %d start %v", v.i, start)
	}
	if len(st.series) != 0 {
		t.Fatal("the state changed before commit")
	}
	// Not committed (a failed export): the retry adds the same again.
	tx = st.begin()
	tx.add("k", t0, number{i: 5})
	v, _, _ = tx.add("k", t0.Add(time.Minute), number{i: 2})
	if v.i != 7 {
		t.Errorf("retry total %d, want 7", v.i)
	}
	tx.commit()
	if !st.dirty || st.series["k"].Int != 7 {
		t.Fatalf("after commit: %+v", st.series)
	}
	tx = st.begin()
	for _, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(-time.Hour)} {
		if _, _, fresh := tx.add("k", at, number{i: 1}); fresh {
			t.Errorf("replay of %v was added", at)
		}
	}
	v, start, fresh = tx.add("k", t0.Add(2*time.Minute), number{i: 1})
	if !fresh || v.i != 8 || !start.Equal(t0) {
		t.Errorf("next interval: %v %v %v", v, start, fresh)
	}
}

func TestCumTxFloat(t *testing.T) {
	st := &cumState{series: make(map[string]cumSeries)}
	tx := st.begin()
	tx.add("k", t0, number{i: 2})
	v, _, _ := tx.add("k", t0.Add(time.Minute), number{f: 0.5, isFloat: true})
	if !v.isFloat || v.f != 2.5 {
		t.Errorf("int then float: %+v", v)
	}
	v, _, _ = tx.add("k", t0.Add(2*time.Minute), number{i: 1})
	if !v.isFloat || v.f != 3.5 {
		t.Errorf("float then int: %+v", v)
	}
}

func TestCumStateSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st, q, err := loadState(dir)
	if err != nil || q != "" || len(st.series) != 0 {
		t.Fatalf("empty state: %v %q %v", err, q, st)
	}
	tx := st.begin()
	tx.add(`pmta.acct.count{domain="a"}`, t0, number{i: 3})
	tx.add(`pmta.acct.count{domain="b"}`, t0, number{f: 1.5, isFloat: true})
	tx.commit()
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != stateFileName {
		t.Errorf("state dir holds %v, want only %s", entries, stateFileName)
	}
	again, q, err := loadState(dir)
	if err != nil || q != "" {
		t.Fatal(err, q)
	}
	if again.series[`pmta.acct.count{domain="a"}`] != st.series[`pmta.acct.count{domain="a"}`] ||
		again.series[`pmta.acct.count{domain="b"}`] != st.series[`pmta.acct.count{domain="b"}`] || again.newest != t0.UnixNano() {
		t.Errorf("loaded %+v, saved %+v", again.series, st.series)
	}
	var f stateFile
	data, _ := os.ReadFile(filepath.Join(dir, stateFileName))
	if err := json.Unmarshal(data, &f); err != nil || f.Version != stateVersion {
		t.Errorf("state file: %v %s", err, data)
	}
}

func TestCumStateQuarantine(t *testing.T) {
	for name, content := range map[string]string{"torn": `{"version":1,"series":{"a":`, "future": `{"version":99}`} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, stateFileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			st, q, err := loadState(dir)
			if err != nil || q == "" || len(st.series) != 0 {
				t.Fatalf("loadState: %v %q %+v", err, q, st)
			}
			if moved, err := os.ReadFile(q); err != nil || string(moved) != content {
				t.Errorf("quarantined file: %v %q", err, moved)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the bad file is still in place: %v", err)
			}
		})
	}
}

func TestCumStateExpire(t *testing.T) {
	st := &cumState{series: make(map[string]cumSeries)}
	tx := st.begin()
	tx.add("old", t0, number{i: 1})
	tx.add("recent", t0.Add(seriesIdle-time.Hour), number{i: 1})
	tx.add("new", t0.Add(seriesIdle+time.Hour), number{i: 1})
	tx.commit()
	st.dirty = false
	if n := st.expire(); n != 1 || !st.dirty {
		t.Fatalf("expired %d (dirty %v), want 1", n, st.dirty)
	}
	if _, ok := st.series["old"]; ok {
		t.Error("the idle series was kept")
	}
	if len(st.series) != 2 {
		t.Errorf("series left: %v", st.series)
	}
}

// TestCumulativeRetryKeepsTotals: a retryable failure leaves the totals
// alone, so the retried write exports the same totals, not doubled ones.
func TestCumulativeRetryKeepsTotals(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Int64
	srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := decodeHTTPRequest(t, r)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, m := range req.GetResourceMetrics()[0].GetScopeMetrics()[0].GetMetrics() {
			if m.GetName() == "pmta.acct.count" {
				dps := m.GetSum().GetDataPoints()
				got.Store(dps[len(dps)-1].GetAsInt())
			}
		}
		writeProto(w, nil)
	}))
	s := newSink(t, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL, Temporality: TemporalityCumulative, StateDir: t.TempDir()})
	pts := []agent.Point{
		agent.NewPoint("pmta_acct", tags("server", "s"), fields("count", int64(4)), t0),
		agent.NewPoint("pmta_acct", tags("server", "s"), fields("count", int64(6)), t0.Add(10*time.Second)),
	}
	if err := s.Write(context.Background(), pts); err == nil {
		t.Fatal("first Write succeeded against 503")
	}
	if err := s.Write(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 10 {
		t.Errorf("total after the retry %d, want 10", got.Load())
	}
}
