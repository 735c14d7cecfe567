package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// e2eConfig points the agent at a simulator and a real InfluxDB database.
func e2eConfig(t *testing.T, apiURL, dialect, format, influxURL, db string) config.Config {
	cfg := config.Default()
	cfg.Server = "e2e-mta01"
	cfg.Tags = map[string]string{"dc": "test"}
	cfg.StateDir = t.TempDir()
	cfg.API.URL = apiURL
	cfg.API.Dialect = dialect
	cfg.API.Format = format
	cfg.API.Interval = time.Hour // one round at start; the test stops the agent after it
	cfg.API.Timeout = 5 * time.Second
	cfg.API.Jitter = 0
	cfg.API.MaxItems = 1000
	cfg.SelfInterval = time.Hour
	cfg.Listen.Address = "127.0.0.1:0"
	cfg.Pipeline.MaxDomains = 1000
	cfg.Sinks.Influx.Enabled = true
	cfg.Sinks.Influx.URL = influxURL
	cfg.Sinks.Influx.Bucket = db + "/autogen"
	cfg.Sinks.Influx.Buffer.MinBackoff = 100 * time.Millisecond
	return cfg
}

// runUntil runs the agent until cond holds (or 30 s pass), then stops it
// the way SIGTERM would and waits for the final drain.
func runUntil(t *testing.T, cfg config.Config, cond func() bool) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- runAgent(ctx, cfg, io.Discard, log) }()
	// A deadline for waiting, not a timing assertion: generous, since CI
	// runs these tests beside the chaos and fleet tests on two cores.
	const wait = 90 * time.Second
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("condition not met within %s", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent stopped with: %v", err)
	}
}

// rows returns one map per series of a `SELECT … GROUP BY *` query, holding
// the tags and the first row's fields.
func rows(t *testing.T, srv *influxtest.Server, db, q string) []map[string]string {
	t.Helper()
	series, err := srv.Query(db, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, s := range series {
		for _, v := range s.Values {
			m := map[string]string{}
			for k, tv := range s.Tags {
				m[k] = tv
			}
			for i, c := range s.Columns {
				if v[i] != nil {
					m[c] = fmt.Sprint(v[i])
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func count(t *testing.T, srv *influxtest.Server, db, measurement string) int {
	t.Helper()
	series, err := srv.Query(db, "SELECT count(*) FROM "+measurement)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) == 0 {
		return 0
	}
	var n int
	for _, v := range series[0].Values[0][1:] {
		if num, ok := v.(json.Number); ok {
			if i, err := num.Int64(); err == nil && int(i) > n {
				n = int(i)
			}
		}
	}
	return n
}

func eqNum(t *testing.T, what, got string, want float64) {
	t.Helper()
	var g float64
	if _, err := fmt.Sscan(got, &g); err != nil {
		t.Errorf("%s = %q, want %v", what, got, want)
		return
	}
	if math.Abs(g-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestAPIToInfluxDB runs the agent against the simulator in each dialect and
// format and checks that every measurement the dialect offers arrives in a
// real InfluxDB with the right tags and exactly the values served.
func TestAPIToInfluxDB(t *testing.T) {
	srv := influxtest.Start(t)
	for _, tc := range []struct{ dialect, format string }{{"pmta", "json"}, {"pmta", "xml"}, {"seed", "json"}} {
		t.Run(tc.dialect+"_"+tc.format, func(t *testing.T) {
			db := "pmta_" + tc.dialect + "_" + tc.format
			srv.CreateDatabase(db)
			now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			s := sim.New(sim.Options{Seed: 7, Clock: func() time.Time { return now }})
			api := httptest.NewServer(s.Handler())
			defer api.Close()
			cfg := e2eConfig(t, api.URL, tc.dialect, tc.format, srv.URL, db)
			snap := s.Snapshot()
			runUntil(t, cfg, func() bool {
				return count(t, srv, db, "pmta_vmta") >= len(snap.VMTAs) && count(t, srv, db, "pmta_status") > 0
			})

			st := rows(t, srv, db, "SELECT * FROM pmta_status GROUP BY *")
			if len(st) != 1 {
				t.Fatalf("pmta_status rows: %d, want 1", len(st))
			}
			row := st[0]
			if row["server"] != "e2e-mta01" || row["dc"] != "test" {
				t.Errorf("pmta_status tags: server=%q dc=%q", row["server"], row["dc"])
			}
			eqNum(t, "up", row["up"], 1)
			if tc.dialect == "pmta" {
				ss := snap.Status
				eqNum(t, "queue_rcp", row["queue_rcp"], float64(ss.Queue.SMTP.Rcp))
				eqNum(t, "queue_domains", row["queue_domains"], float64(ss.Queue.SMTP.Dom))
				eqNum(t, "queue_kb", row["queue_kb"], ss.Queue.SMTP.KB)
				eqNum(t, "conn_in", row["conn_in"], float64(ss.Conn.SMTPIn.Cur))
				eqNum(t, "conn_out", row["conn_out"], float64(ss.Conn.SMTPOut.Cur))
				eqNum(t, "conn_out_max", row["conn_out_max"], float64(ss.Conn.SMTPOut.Max))
				eqNum(t, "out_rcp_total", row["out_rcp_total"], float64(ss.Traffic.Total.Out.Rcp))
				eqNum(t, "in_rcp_total", row["in_rcp_total"], float64(ss.Traffic.Total.In.Rcp))
				eqNum(t, "spool_rcp", row["spool_rcp"], float64(ss.Spool.TotalRcp))
				eqNum(t, "spool_max_rcp", row["spool_max_rcp"], float64(ss.Spool.MaxRcp))
				eqNum(t, "uptime_s", row["uptime_s"], ss.TimeNow.Sub(ss.StartupTime).Seconds())
			} else {
				eqNum(t, "queue_rcp", row["queue_rcp"], float64(snap.Seed.QueueDepth))
				eqNum(t, "out_rcp_per_sec", row["out_rcp_per_sec"], snap.Seed.MsgsPerSec)
				eqNum(t, "conn_active", row["conn_active"], float64(snap.Seed.ActiveConnections))
			}

			queues := map[string]sim.Queue{}
			for _, q := range snap.Queues {
				queues[q.Domain+"/"+q.VMTA] = q
			}
			got := rows(t, srv, db, "SELECT * FROM pmta_queue GROUP BY *")
			if len(got) != len(snap.Queues) {
				t.Errorf("pmta_queue series: %d, want %d (every queue served)", len(got), len(snap.Queues))
			}
			for _, r := range got {
				q, ok := queues[r["domain"]+"/"+r["vmta"]]
				if !ok {
					t.Errorf("pmta_queue %s/%s was not served", r["domain"], r["vmta"])
					continue
				}
				eqNum(t, q.Name+" rcp", r["rcp"], float64(q.Rcp))
				eqNum(t, q.Name+" kb", r["kb"], q.KB)
				eqNum(t, q.Name+" conn", r["conn"], float64(q.Conn))
				eqNum(t, q.Name+" paused", r["paused"], b01(q.Paused))
				eqNum(t, q.Name+" backoff", r["backoff"], b01(q.Backoff))
				if r["isp"] == "" || r["server"] != "e2e-mta01" {
					t.Errorf("pmta_queue %s tags: %v", q.Name, r)
				}
			}

			domains := map[string]sim.Domain{}
			for _, d := range snap.Domains {
				domains[d.Name] = d
			}
			got = rows(t, srv, db, "SELECT * FROM pmta_domain GROUP BY *")
			if len(got) != len(snap.Domains) {
				t.Errorf("pmta_domain series: %d, want %d", len(got), len(snap.Domains))
			}
			for _, r := range got {
				d, ok := domains[r["domain"]]
				if !ok {
					t.Errorf("pmta_domain %s was not served", r["domain"])
					continue
				}
				eqNum(t, d.Name+" rcp", r["rcp"], float64(d.Rcp))
				eqNum(t, d.Name+" kb", r["kb"], d.KB)
				if tc.dialect == "seed" {
					eqNum(t, d.Name+" delivered", r["delivered"], float64(d.Delivered))
					eqNum(t, d.Name+" deferred", r["deferred"], float64(d.Deferred))
				}
				want := map[string]string{"gmail.com": "google", "yahoo.com": "yahoo", "outlook.com": "microsoft", "hotmail.com": "microsoft", "aol.com": "yahoo"}[d.Name]
				if want != "" && r["isp"] != want {
					t.Errorf("pmta_domain %s isp=%q, want %q", d.Name, r["isp"], want)
				}
			}

			vmtas := map[string]sim.VMTA{}
			for _, v := range snap.VMTAs {
				vmtas[v.Name] = v
			}
			got = rows(t, srv, db, "SELECT * FROM pmta_vmta GROUP BY *")
			if len(got) != len(snap.VMTAs) {
				t.Errorf("pmta_vmta series: %d, want %d", len(got), len(snap.VMTAs))
			}
			for _, r := range got {
				v, ok := vmtas[r["vmta"]]
				if !ok {
					t.Errorf("pmta_vmta %s was not served", r["vmta"])
					continue
				}
				eqNum(t, v.Name+" rcp", r["rcp"], float64(v.Rcp))
				if tc.dialect == "seed" {
					eqNum(t, v.Name+" msgs_per_sec", r["msgs_per_sec"], v.MsgsPerSec)
				} else {
					eqNum(t, v.Name+" domains", r["domains"], float64(v.Domains))
				}
			}
		})
	}
}

// TestBrokenAPIIsUpZero: an API that is down shows as up=0 in InfluxDB and
// the agent keeps running and stops cleanly.
func TestBrokenAPIIsUpZero(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_down"
	srv.CreateDatabase(db)
	s := sim.New(sim.Options{Seed: 3})
	s.SetFaults(sim.Faults{Down: true})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	cfg := e2eConfig(t, api.URL, "pmta", "json", srv.URL, db)
	runUntil(t, cfg, func() bool { return count(t, srv, db, "pmta_status") > 0 })
	st := rows(t, srv, db, "SELECT * FROM pmta_status GROUP BY *")
	if len(st) != 1 || st[0]["up"] != "0" {
		t.Fatalf("pmta_status: %v, want one row with up=0", st)
	}
	if n := count(t, srv, db, "pmta_queue"); n != 0 {
		t.Errorf("pmta_queue points from a down API: %d", n)
	}
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	path := t.TempDir() + "/bad.yaml"
	writeTestFile(t, path, "api:\n  url: ftp://x\n  dialect: snmp\n  intervall: 5s\nsinks:\n  influx:\n    enabled: true\n    bucket: \"\"\n")
	var out, errOut strings.Builder
	code := run([]string{"check-config", "-config", path}, &out, &errOut)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitConfig, errOut.String())
	}
	for _, want := range []string{"api.url:", "api.dialect:", "api.intervall: unknown key", "sinks.influx.bucket:"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if code := run([]string{"check-config", "-config", "../../deploy/pmta-agent.example.yaml"}, &out, &errOut); code != 0 {
		t.Errorf("example config: exit %d: %s", code, errOut.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	for _, cmd := range []string{"run", "once", "check-config", "init", "demo", "backfill"} {
		out.Reset()
		errOut.Reset()
		if code := run([]string{cmd, "-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "Usage of "+cmd) {
			t.Errorf("%s -h: exit %d, %q", cmd, code, errOut.String())
		}
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}
