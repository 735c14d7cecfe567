package influx

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// TestInfluxDBPartialWrite writes to a real InfluxDB 1.8 a batch holding one
// line it refuses: `count` as a float where the measurement already has it
// as an integer. InfluxDB stores the other lines and answers 400 "partial
// write: field type conflict … dropped=1". The sink must report that as
// Permanent with Rejected = 1, and claim no progress beyond what InfluxDB
// accepted as a whole, so that the delivery loop finds the bad point by
// writing halves again, which InfluxDB overwrites harmlessly.
func TestInfluxDBPartialWrite(t *testing.T) {
	srv := influxtest.Start(t)
	srv.CreateDatabase("pmta")
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	point := func(domain string, count any, sec int) agent.Point {
		return agent.NewPoint("pmta_acct", []agent.Tag{{Key: "server", Value: "mx1"}, {Key: "domain", Value: domain}},
			[]agent.Field{{Key: "count", Value: count}}, t0.Add(time.Duration(sec)*time.Second))
	}
	ctx := context.Background()
	s := newSink(t, Config{URL: srv.URL, Bucket: "pmta"})
	if err := s.Write(ctx, []agent.Point{point("a", int64(1), 0)}); err != nil {
		t.Fatalf("first write: %v", err)
	}

	checkRefusal := func(t *testing.T, err error, settled int) {
		t.Helper()
		var se *agent.SinkError
		if !errors.As(err, &se) || se.Kind != agent.Permanent {
			t.Fatalf("Write: %v, want a permanent *agent.SinkError", err)
		}
		if se.Rejected != 1 {
			t.Errorf("Rejected = %d, want 1 (err %v)", se.Rejected, err)
		}
		if n := agent.Settled(err); n != settled {
			t.Errorf("Settled = %d, want %d", n, settled)
		}
		if !strings.Contains(err.Error(), "field type conflict") {
			t.Errorf("error %q does not give InfluxDB's reason", err)
		}
	}

	t.Run("one request", func(t *testing.T) {
		batch := []agent.Point{point("b", int64(2), 1), point("c", 2.5, 2), point("d", int64(4), 3)}
		checkRefusal(t, s.Write(ctx, batch), 0)
		if got, want := domains(t, srv), []string{"a", "b", "d"}; !slices.Equal(got, want) {
			t.Errorf("InfluxDB holds %v, want %v: 1.8 stores all but the refused line", got, want)
		}
		// What the delivery loop does next: halves, then quarters. The
		// good points are written again; the bad one alone is refused, all
		// of it (Rejected equals the points written).
		if err := s.Write(ctx, batch[:1]); err != nil {
			t.Errorf("first half: %v", err)
		}
		checkRefusal(t, s.Write(ctx, batch[1:2]), 0)
		if err := s.Write(ctx, batch[2:]); err != nil {
			t.Errorf("last quarter: %v", err)
		}
		if got, want := domains(t, srv), []string{"a", "b", "d"}; !slices.Equal(got, want) {
			t.Errorf("after writing again InfluxDB holds %v, want %v (overwritten, not duplicated)", got, want)
		}
	})
}

// domains returns the domain of every pmta_acct point stored, in time order.
func domains(t *testing.T, srv *influxtest.Server) []string {
	t.Helper()
	series, err := srv.Query("pmta", "SELECT count, domain FROM pmta_acct")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range series {
		col := slices.Index(s.Columns, "domain")
		if col < 0 {
			t.Fatalf("no domain column in %v", s.Columns)
		}
		for _, row := range s.Values {
			d, _ := row[col].(string)
			out = append(out, d)
		}
	}
	return out
}
