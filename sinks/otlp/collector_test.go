package otlp

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/sinks/otlp/otelcoltest"
)

// waitTimeout bounds how long a test waits for the file exporter to flush.
const waitTimeout = 20 * time.Second

// transports returns a sink config per protocol for col.
func transports(col *otelcoltest.Collector) map[string]Config {
	return map[string]Config{
		"grpc": {Protocol: ProtocolGRPC, Endpoint: col.GRPCEndpoint(), Insecure: true},
		"http": {Protocol: ProtocolHTTP, Endpoint: col.HTTPEndpoint()},
	}
}

func atLeast(n int) func([]otelcoltest.Point) bool {
	return func(p []otelcoltest.Point) bool { return len(p) >= n }
}

// byName indexes data points by metric name; the names must be unique.
func byName(t *testing.T, pts []otelcoltest.Point) map[string]otelcoltest.Point {
	t.Helper()
	m := make(map[string]otelcoltest.Point, len(pts))
	for _, p := range pts {
		if _, dup := m[p.Name]; dup {
			t.Fatalf("metric %s arrived twice", p.Name)
		}
		m[p.Name] = p
	}
	return m
}

// TestCollectorFamilies sends one point of every family over each transport
// and checks every data point the collector wrote.
func TestCollectorFamilies(t *testing.T) {
	col := otelcoltest.Start(t)
	total := 0
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			cfg := transports(col)[proto]
			cfg.Version = "1.2.3"
			cfg.Resource = map[string]string{"deployment.environment": "test"}
			s := newSink(t, cfg)
			// Each transport uses its own server name, so the two runs
			// can be told apart in the one output file.
			pts := familyPoints()
			for i := range pts {
				pts[i].SetTag("server", "mx-"+proto)
			}
			if err := s.Write(context.Background(), pts); err != nil {
				t.Fatalf("Write: %v", err)
			}
			total += 31
			all := col.WaitPoints(t, waitTimeout, atLeast(total))
			var mine []otelcoltest.Point
			for _, p := range all {
				if p.Resource["host.name"] == "mx-"+proto {
					mine = append(mine, p)
				}
			}
			checkFamilies(t, byName(t, mine), "mx-"+proto)
		})
	}
}

func checkFamilies(t *testing.T, got map[string]otelcoltest.Point, server string) {
	t.Helper()
	status := map[string]string{"server": server}
	queue := map[string]string{"server": server, "domain": "gmail.com", "isp": "google", "vmta": "vmta-gm-011"}
	domain := map[string]string{"server": server, "domain": "yahoo.com", "isp": "yahoo"}
	vmta := map[string]string{"server": server, "vmta": "vmta-yh-021"}
	acct := map[string]string{"server": server, "type": "d", "domain": "gmail.com", "isp": "google",
		"vmta": "vmta-gm-011", "pool": "p1", "source_ip": "192.0.2.10", "dsn_class": "2"} // bounce_cat empty: absent
	diag := map[string]string{"server": server, "type": "b", "isp": "yahoo", "diag": "421 4.7.0 [TSS04] Messages from # temporarily deferred"}
	agentAttrs := map[string]string{"server": server, "component": "poller"}
	end := t0.Add(time.Minute)
	pmtaStart := t0.Add(-285005 * time.Second)

	type want struct {
		name, unit, typ, temp string
		attrs                 map[string]string
		start, time           time.Time
		value                 any
	}
	wants := []want{
		{"pmta.status.up", "1", "gauge", "", status, time.Time{}, t0, int64(1)},
		{"pmta.status.queue_rcp", "{recipient}", "gauge", "", status, time.Time{}, t0, int64(84312)},
		{"pmta.status.queue_kb", "KiBy", "gauge", "", status, time.Time{}, t0, 4188302.6},
		{"pmta.status.conn_out", "{connection}", "gauge", "", status, time.Time{}, t0, int64(618)},
		{"pmta.status.out_rcp_total", "{recipient}", "sum", "cumulative", status, pmtaStart, t0, int64(18342211)},
		{"pmta.status.out_kb_total", "KiBy", "sum", "cumulative", status, pmtaStart, t0, 912455310.4},
		{"pmta.status.out_rcp_per_sec", "{recipient}/s", "gauge", "", status, time.Time{}, t0, 116.85},
		{"pmta.status.spool_init_pct", "%", "gauge", "", status, time.Time{}, t0, 100.0},
		{"pmta.status.shutting_down", "1", "gauge", "", status, time.Time{}, t0, int64(0)},
		{"pmta.status.uptime_s", "s", "gauge", "", status, time.Time{}, t0, int64(285005)},
		{"pmta.queue.rcp", "{recipient}", "gauge", "", queue, time.Time{}, t0, int64(9120)},
		{"pmta.queue.kb", "KiBy", "gauge", "", queue, time.Time{}, t0, 441870.2},
		{"pmta.queue.conn", "{connection}", "gauge", "", queue, time.Time{}, t0, int64(20)},
		{"pmta.queue.paused", "1", "gauge", "", queue, time.Time{}, t0, int64(0)},
		{"pmta.queue.backoff", "1", "gauge", "", queue, time.Time{}, t0, int64(1)},
		{"pmta.domain.rcp", "{recipient}", "gauge", "", domain, time.Time{}, t0, int64(24410)},
		{"pmta.domain.kb", "KiBy", "gauge", "", domain, time.Time{}, t0, 1203398.0},
		{"pmta.domain.conn", "{connection}", "gauge", "", domain, time.Time{}, t0, int64(2)},
		{"pmta.domain.delivered", "{recipient}", "gauge", "", domain, time.Time{}, t0, int64(150230)},
		{"pmta.domain.deferred", "{recipient}", "gauge", "", domain, time.Time{}, t0, int64(9120)},
		{"pmta.vmta.rcp", "{recipient}", "gauge", "", vmta, time.Time{}, t0, int64(18342)},
		{"pmta.vmta.domains", "{domain}", "gauge", "", vmta, time.Time{}, t0, int64(212)},
		{"pmta.vmta.msgs_per_sec", "{message}/s", "gauge", "", vmta, time.Time{}, t0, 61.5},
		{"pmta.acct.count", "{record}", "sum", "delta", acct, t0, end, int64(41)},
		{"pmta.acct.bytes", "By", "sum", "delta", acct, t0, end, int64(2048000)},
		{"pmta.acct.queued_s_sum", "s", "sum", "delta", acct, t0, end, int64(930)},
		{"pmta.acct.queued_s_max", "s", "gauge", "", acct, time.Time{}, t0, int64(120)},
		{"pmta.acct_diag.count", "{record}", "sum", "delta", diag, t0, end, int64(7)},
		{"pmta.agent.polls", "{poll}", "gauge", "", agentAttrs, time.Time{}, t0, int64(12)},
		{"pmta.agent.errors", "{error}", "gauge", "", agentAttrs, time.Time{}, t0, int64(1)},
		{"pmta.agent.last_duration_s", "s", "gauge", "", agentAttrs, time.Time{}, t0, 0.25},
	}
	if len(got) != len(wants) {
		t.Errorf("got %d metrics, want %d", len(got), len(wants))
	}
	if _, ok := got["pmta.acct.interval_s"]; ok {
		t.Error("interval_s was exported; it is metadata")
	}
	wantRes := map[string]string{"service.name": "pmta-agent", "service.version": "1.2.3",
		"host.name": server, "deployment.environment": "test"}
	for _, w := range wants {
		p, ok := got[w.name]
		if !ok {
			t.Errorf("%s: missing", w.name)
			continue
		}
		if p.Unit != w.unit || p.Type != w.typ || p.Temporality != w.temp {
			t.Errorf("%s: unit/type/temporality %q/%s/%q, want %q/%s/%q", w.name, p.Unit, p.Type, p.Temporality, w.unit, w.typ, w.temp)
		}
		if p.Monotonic != (w.typ == "sum") {
			t.Errorf("%s: monotonic %v", w.name, p.Monotonic)
		}
		if !maps.Equal(p.Attributes, w.attrs) {
			t.Errorf("%s: attributes %v, want %v", w.name, p.Attributes, w.attrs)
		}
		if !maps.Equal(p.Resource, wantRes) {
			t.Errorf("%s: resource %v, want %v", w.name, p.Resource, wantRes)
		}
		if p.Scope != scopeName {
			t.Errorf("%s: scope %q", w.name, p.Scope)
		}
		if !p.Start.Equal(w.start) || !p.Time.Equal(w.time) {
			t.Errorf("%s: start/time %v/%v, want %v/%v", w.name, p.Start, p.Time, w.start, w.time)
		}
		switch v := w.value.(type) {
		case int64:
			if p.IsFloat || p.Int != v {
				t.Errorf("%s: value %v (float %v), want int %d", w.name, p.Value(), p.IsFloat, v)
			}
		case float64:
			if !p.IsFloat || p.Float != v {
				t.Errorf("%s: value %v (float %v), want double %v", w.name, p.Value(), p.IsFloat, v)
			}
		}
	}
}

// acctPoints makes intervals × series pmta_acct points with random counts
// and returns them with the sum of their counts.
func acctPoints(seed uint64, intervals, series int, server string) ([]agent.Point, int64) {
	r := rand.New(rand.NewPCG(seed, 1))
	var pts []agent.Point
	var sum int64
	for iv := range intervals {
		at := t0.Add(time.Duration(iv) * 10 * time.Second)
		for s := range series {
			n := int64(r.IntN(1000) + 1)
			sum += n
			pts = append(pts, agent.NewPoint("pmta_acct",
				tags("server", server, "type", "d", "domain", fmt.Sprintf("d%03d.example", s), "isp", "other", "vmta", "v1"),
				fields("count", n, "bytes", n*1000, "queued_s_sum", n*3, "queued_s_max", int64(9)), at))
		}
	}
	return pts, sum
}

func sumCounts(pts []otelcoltest.Point, server string) (sum int64, n int) {
	for _, p := range pts {
		if p.Name == "pmta.acct.count" && p.Resource["host.name"] == server {
			sum += p.Int
			n++
		}
	}
	return sum, n
}

// TestCollectorAcctSumsExact sends many accounting points in several writes
// and checks that the counts add up exactly at the collector.
func TestCollectorAcctSumsExact(t *testing.T) {
	col := otelcoltest.Start(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			s := newSink(t, transports(col)[proto])
			server := "acct-" + proto
			pts, want := acctPoints(7, 6, 50, server)
			for off := 0; off < len(pts); off += 37 {
				if err := s.Write(context.Background(), pts[off:min(off+37, len(pts))]); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			got := col.WaitPoints(t, waitTimeout, func(p []otelcoltest.Point) bool {
				_, n := sumCounts(p, server)
				return n >= len(pts)
			})
			sum, n := sumCounts(got, server)
			if n != len(pts) || sum != want {
				t.Fatalf("collector has %d count points summing to %d, want %d summing to %d", n, sum, len(pts), want)
			}
		})
	}
}

// TestCollectorOutage stops the collector: Write fails Retryable; after a
// restart the same points go through and nothing is lost.
func TestCollectorOutage(t *testing.T) {
	col := otelcoltest.Start(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			cfg := transports(col)[proto]
			cfg.Timeout = 2 * time.Second
			s := newSink(t, cfg)
			server := "outage-" + proto
			pts, want := acctPoints(11, 4, 10, server)
			half := len(pts) / 2
			if err := s.Write(context.Background(), pts[:half]); err != nil {
				t.Fatalf("Write before the outage: %v", err)
			}
			col.WaitPoints(t, waitTimeout, func(p []otelcoltest.Point) bool { _, n := sumCounts(p, server); return n >= half })
			col.Stop()

			err := s.Write(context.Background(), pts[half:])
			if err == nil {
				t.Fatal("Write with the collector down succeeded")
			}
			if kind, _ := agent.Classify(err); kind != agent.Retryable {
				t.Fatalf("Write with the collector down: kind %s, want retryable (%v)", kind, err)
			}
			t.Logf("collector down: %v", err)

			col.Restart()
			// The delivery loop retries with back-off; so does this.
			deadline := time.Now().Add(30 * time.Second)
			for {
				err = s.Write(context.Background(), pts[half:])
				if err == nil {
					break
				}
				if kind, _ := agent.Classify(err); kind != agent.Retryable {
					t.Fatalf("Write after the restart: kind %s (%v)", kind, err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("Write still failing 30s after the restart: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			got := col.WaitPoints(t, waitTimeout, func(p []otelcoltest.Point) bool { _, n := sumCounts(p, server); return n >= len(pts) })
			if sum, n := sumCounts(got, server); n != len(pts) || sum != want {
				t.Fatalf("after the outage: %d count points summing to %d, want %d summing to %d", n, sum, len(pts), want)
			}
		})
	}
}

// TestCollectorCumulativeAcrossRestart runs cumulative mode through a
// New/Close/New cycle with the same state directory, with a replay.
func TestCollectorCumulativeAcrossRestart(t *testing.T) {
	col := otelcoltest.Start(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			cfg := transports(col)[proto]
			cfg.Temporality = TemporalityCumulative
			cfg.StateDir = t.TempDir()
			server := "cum-" + proto
			point := func(iv int, count int64) agent.Point {
				return agent.NewPoint("pmta_acct", tags("server", server, "type", "d", "domain", "gmail.com"),
					fields("count", count, "interval_s", int64(60)), t0.Add(time.Duration(iv)*time.Minute))
			}
			s1, err := New(cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			if err := s1.Write(context.Background(), []agent.Point{point(0, 5), point(1, 7)}); err != nil {
				t.Fatal(err)
			}
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := newSink(t, cfg)
			// Interval 1 again (a replay after a crash), then interval 2.
			if err := s2.Write(context.Background(), []agent.Point{point(1, 7), point(2, 11)}); err != nil {
				t.Fatal(err)
			}
			if got := s2.Stats()[1]; got.Key != "replays_skipped" || got.Value != int64(1) {
				t.Errorf("stat %v, want replays_skipped=1", got)
			}
			got := col.WaitPoints(t, waitTimeout, func(p []otelcoltest.Point) bool { _, n := sumCounts(p, server); return n >= 3 })
			time.Sleep(200 * time.Millisecond) // a replay, if exported, would have arrived too
			got, _ = col.Points()
			var mine []otelcoltest.Point
			for _, p := range got {
				if p.Resource["host.name"] == server {
					mine = append(mine, p)
				}
			}
			want := []struct {
				end   time.Time
				total int64
			}{{t0.Add(time.Minute), 5}, {t0.Add(2 * time.Minute), 12}, {t0.Add(3 * time.Minute), 23}}
			if len(mine) != len(want) {
				t.Fatalf("got %d data points, want %d: %+v", len(mine), len(want), mine)
			}
			for i, w := range want {
				p := mine[i]
				if p.Type != "sum" || p.Temporality != "cumulative" || !p.Monotonic {
					t.Errorf("point %d: %s %s monotonic=%v", i, p.Type, p.Temporality, p.Monotonic)
				}
				if !p.Start.Equal(t0) || !p.Time.Equal(w.end) || p.Int != w.total {
					t.Errorf("point %d: start %v time %v total %d, want %v %v %d", i, p.Start, p.Time, p.Int, t0, w.end, w.total)
				}
			}
		})
	}
}

// TestCollectorInvalidUTF8 sends, over each transport, a batch in which one
// point carries bytes that are not UTF-8 in its measurement, a tag key, tag
// values and the server tag, next to a clean point, with a resource
// attribute and version just as bad. Protobuf cannot encode such strings,
// so before the mapping sanitized them the exporters refused the whole
// batch on every retry; now the collector takes it and holds the
// sanitized values.
func TestCollectorInvalidUTF8(t *testing.T) {
	col := otelcoltest.Start(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			cfg := transports(col)[proto]
			cfg.Version = "1.0\xff"
			cfg.Resource = map[string]string{"deployment.environment": "t\xe9st"}
			s := newSink(t, cfg)
			server := "mx\xff-" + proto
			pts := []agent.Point{
				agent.NewPoint("pmta_qu\xe9ue", tags("server", server, "domain", "caf\xe9.com", "is\xffp", "goo\x01gle", "vmta", "v1"),
					fields("rcp", int64(7), "k\xe9b", 1.5), t0),
				agent.NewPoint("pmta_queue", tags("server", server, "domain", "example.com"), fields("rcp", int64(3)), t0),
			}
			if err := s.Write(context.Background(), pts); err != nil {
				t.Fatalf("Write: %v", err)
			}
			host := "mx\uFFFD-" + proto
			mine := func(all []otelcoltest.Point) (out []otelcoltest.Point) {
				for _, p := range all {
					if p.Resource["host.name"] == host {
						out = append(out, p)
					}
				}
				return out
			}
			got := mine(col.WaitPoints(t, waitTimeout, func(p []otelcoltest.Point) bool { return len(mine(p)) >= 3 }))
			type key struct{ name, domain string }
			byKey := map[key]otelcoltest.Point{}
			for _, p := range got {
				byKey[key{p.Name, p.Attributes["domain"]}] = p
			}
			bad, ok := byKey[key{"pmta.qu\uFFFDue.rcp", "caf\uFFFD.com"}]
			if !ok {
				t.Fatalf("no sanitized data point among %+v", got)
			}
			wantAttrs := map[string]string{"server": host, "domain": "caf\uFFFD.com", "is\uFFFDp": "goo gle", "vmta": "v1"}
			if !maps.Equal(bad.Attributes, wantAttrs) || bad.Int != 7 {
				t.Errorf("attributes %q value %d, want %q and 7", bad.Attributes, bad.Int, wantAttrs)
			}
			if _, ok := byKey[key{"pmta.qu\uFFFDue.k\uFFFDb", "caf\uFFFD.com"}]; !ok {
				t.Errorf("the float field's metric name is not sanitized: %+v", got)
			}
			if p, ok := byKey[key{"pmta.queue.rcp", "example.com"}]; !ok || p.Int != 3 {
				t.Errorf("the clean point did not arrive intact: %+v", got)
			}
			wantRes := map[string]string{"service.name": "pmta-agent", "service.version": "1.0\uFFFD",
				"host.name": host, "deployment.environment": "t\uFFFDst"}
			if !maps.Equal(bad.Resource, wantRes) {
				t.Errorf("resource %q, want %q", bad.Resource, wantRes)
			}
		})
	}
}
