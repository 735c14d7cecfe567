package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/acct"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// fullViews are the default views and the full cross product, which the
// exactness tests compare per (type, domain, vmta) with what was written.
func fullViews() []acct.View { return append(acct.DefaultViews(), acct.FullView()) }

// acctSums returns sum(count) of the pmta_acct_full view per (type, domain,
// vmta): the agent must run with fullViews.
func acctSums(t *testing.T, srv *influxtest.Server, db string) (map[sim.AcctKey]int64, int64) {
	t.Helper()
	series, err := srv.Query(db, `SELECT sum("count") FROM pmta_acct_full GROUP BY "type", "domain", "vmta"`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[sim.AcctKey]int64{}
	var total int64
	for _, s := range series {
		n, err := s.Values[0][1].(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		out[sim.AcctKey{Type: s.Tags["type"], Domain: s.Tags["domain"], VMTA: s.Tags["vmta"]}] += n
		total += n
	}
	return out, total
}

// viewTotal returns sum(count) over one measurement.
func viewTotal(t *testing.T, srv *influxtest.Server, db, measurement string) int64 {
	t.Helper()
	series, err := srv.Query(db, `SELECT sum("count") FROM `+measurement)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range series {
		n, err := s.Values[0][1].(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// checkViewsAgree requires every default view to hold the same total as the
// full one: each view sums every record.
func checkViewsAgree(t *testing.T, srv *influxtest.Server, db string, want int64) {
	t.Helper()
	for _, v := range acct.DefaultViews() {
		if got := viewTotal(t, srv, db, v.Name); got != want {
			t.Errorf("%s sums to %d in InfluxDB, the full view to %d", v.Name, got, want)
		}
	}
}

// TestAcctToInfluxDB: the simulator writes accounting files that rotate by
// size and move to another directory while the agent tails them into a real
// InfluxDB; the stored counts equal what was written, per (type, domain,
// vmta), exactly.
func TestAcctToInfluxDB(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_acct_e2e"
	srv.CreateDatabase(db)
	dir := t.TempDir()
	logs, moved := filepath.Join(dir, "log"), filepath.Join(dir, "moved")
	s := sim.New(sim.Options{Seed: 11, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, MoveTo: moved, MaxSize: 256 << 10, SplitDiag: true, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	for i := range 40 {
		if err := w.Write(250, base.Add(time.Duration(i)*7*time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	cfg := e2eConfig(t, "http://127.0.0.1:1", "pmta", "json", srv.URL, db)
	cfg.API.Enabled = false
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Acct.Enabled = true
	cfg.Acct.StartAt = "beginning"
	cfg.Acct.PollEvery = 100 * time.Millisecond
	cfg.Acct.Globs = []string{filepath.Join(logs, "*.csv"), filepath.Join(moved, "*.csv")}
	cfg.Acct.Views = fullViews()

	written := int64(40 * 250)
	go func() {
		// More records, with rotations, while the agent runs.
		time.Sleep(300 * time.Millisecond)
		for i := range 20 {
			_ = w.Write(100, base.Add(time.Duration(280+i*7)*time.Second))
			if i%5 == 0 {
				_ = w.Rotate()
			}
		}
		_ = w.Close()
	}()
	written += 20 * 100
	runUntil(t, cfg, func() bool {
		_, total := acctSums(t, srv, db)
		return total >= written
	})
	got, total := acctSums(t, srv, db)
	want := w.Counts()
	var wantTotal int64
	for k, n := range want {
		wantTotal += n
		if got[k] != n {
			t.Errorf("%v: InfluxDB has %d, written %d", k, got[k], n)
		}
	}
	if total != wantTotal || wantTotal != written {
		t.Errorf("InfluxDB total %d, writer counts %d, written %d", total, wantTotal, written)
	}
	checkViewsAgree(t, srv, db, total)
}
