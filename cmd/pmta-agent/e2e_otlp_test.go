package main

import (
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
	"github.com/pmta-agent/pmta-agent/sinks/otlp/otelcoltest"
)

// collectorAcct sums the full view's pmta.acct_full.count data points per
// (type, domain, vmta).
func collectorAcct(pts []otelcoltest.Point) (map[sim.AcctKey]int64, int64) {
	out := map[sim.AcctKey]int64{}
	var total int64
	for _, p := range pts {
		if p.Name != "pmta.acct_full.count" {
			continue
		}
		k := sim.AcctKey{Type: p.Attributes["type"], Domain: p.Attributes["domain"], VMTA: p.Attributes["vmta"]}
		out[k] += p.Int
		total += p.Int
	}
	return out, total
}

// TestBothSinksAgree runs the agent with InfluxDB and the OTLP sink (each
// transport) against the simulator's API and accounting files, stops the
// collector for a while in the middle, and checks that both backends hold
// identical accounting totals, equal to the records written, and the same
// polled values.
func TestBothSinksAgree(t *testing.T) {
	t.Parallel() // its own servers and ports: beside the chaos test
	srv := influxtest.Start(t)
	col := otelcoltest.Start(t)
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			db := "pmta_both_" + protocol
			srv.CreateDatabase(db)
			dir := t.TempDir()
			logs := filepath.Join(dir, "log")
			now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			s := sim.New(sim.Options{Seed: 21, Rate: -1, Clock: func() time.Time { return now }})
			api := httptest.NewServer(s.Handler())
			defer api.Close()
			w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, MaxSize: 128 << 10, SplitDiag: true, LocalZone: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			// Records from the past hour. The two subtests share one collector
			// and tell their points apart by the server (host.name).
			base := time.Now().Add(-time.Hour).Truncate(time.Minute)
			for i := range 30 {
				if err := w.Write(200, base.Add(time.Duration(i)*11*time.Second)); err != nil {
					t.Fatal(err)
				}
			}

			cfg := e2eConfig(t, api.URL, "pmta", "json", srv.URL, db)
			cfg.Server = "both-" + protocol
			cfg.Acct.Enabled = true
			cfg.Acct.StartAt = "beginning"
			cfg.Acct.PollEvery = 100 * time.Millisecond
			cfg.Acct.Globs = []string{filepath.Join(logs, "*.csv")}
			cfg.Acct.Views = fullViews()
			cfg.Sinks.OTLP.Enabled = true
			cfg.Sinks.OTLP.Protocol = protocol
			cfg.Sinks.OTLP.Insecure = true
			cfg.Sinks.OTLP.Endpoint = col.GRPCEndpoint()
			if protocol == "http" {
				cfg.Sinks.OTLP.Endpoint = col.HTTPEndpoint()
			}
			cfg.Sinks.OTLP.Buffer.MinBackoff = 100 * time.Millisecond
			cfg.Sinks.OTLP.Buffer.MaxBackoff = 500 * time.Millisecond

			mine := func(pts []otelcoltest.Point) []otelcoltest.Point {
				var out []otelcoltest.Point
				for _, p := range pts {
					if p.Resource["host.name"] == cfg.Server {
						out = append(out, p)
					}
				}
				return out
			}
			written := int64(30 * 200)
			go func() {
				// The collector goes away while more records are written.
				time.Sleep(500 * time.Millisecond)
				col.Stop()
				for i := range 10 {
					_ = w.Write(100, base.Add(time.Duration(400+i*11)*time.Second))
				}
				time.Sleep(2 * time.Second)
				col.Restart()
			}()
			written += 10 * 100
			runUntil(t, cfg, func() bool {
				_, ti := acctSums(t, srv, db)
				pts, err := col.Points()
				if err != nil {
					return false
				}
				_, tc := collectorAcct(mine(pts))
				return ti >= written && tc >= written
			})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			pts, err := col.Points()
			if err != nil {
				t.Fatal(err)
			}
			pts = mine(pts)
			fromInflux, ti := acctSums(t, srv, db)
			fromCollector, tc := collectorAcct(pts)
			if ti != written || tc != written {
				t.Errorf("totals: InfluxDB %d, collector %d, written %d", ti, tc, written)
			}
			for k, n := range w.Counts() {
				if fromInflux[k] != n || fromCollector[k] != n {
					t.Errorf("%v: written %d, InfluxDB %d, collector %d", k, n, fromInflux[k], fromCollector[k])
				}
			}

			// The polled values are the same in both, and what was served.
			snap := s.Snapshot()
			var queueRcp *otelcoltest.Point
			for i, p := range pts {
				if p.Name == "pmta.status.queue_rcp" {
					queueRcp = &pts[i]
				}
			}
			if queueRcp == nil {
				t.Fatal("no pmta.status.queue_rcp at the collector")
			}
			if queueRcp.Int != snap.Status.Queue.SMTP.Rcp || queueRcp.Type != "gauge" || queueRcp.Unit != "{recipient}" {
				t.Errorf("pmta.status.queue_rcp: %+v, want gauge {recipient} %d", *queueRcp, snap.Status.Queue.SMTP.Rcp)
			}
			st := rows(t, srv, db, "SELECT queue_rcp FROM pmta_status GROUP BY *")
			if len(st) == 0 {
				t.Fatal("no pmta_status in InfluxDB")
			}
			eqNum(t, "InfluxDB queue_rcp", st[0]["queue_rcp"], float64(snap.Status.Queue.SMTP.Rcp))
		})
	}
}
