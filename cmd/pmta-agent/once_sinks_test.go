package main

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// once -sinks sends one round through the configured sinks and reports
// each one's answer: the points are in InfluxDB and it says so; a database
// that does not exist is a failure, said, after -stall.
func TestOnceSinks(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_once_sinks"
	srv.CreateDatabase(db)
	s := sim.New(sim.Options{Seed: 5})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	dir := t.TempDir()
	conf := func(bucket string) string {
		path := filepath.Join(dir, bucket+".yaml")
		writeTestFile(t, path, fmt.Sprintf(`server: once-sinks
state_dir: %s
listen: {enabled: false}
api: {enabled: true, url: %s}
sinks:
  influx: {enabled: true, url: %s, bucket: %s/autogen}
`, filepath.Join(dir, "state"), api.URL, srv.URL, bucket))
		return path
	}
	var out, errOut syncBuffer
	if code := run([]string{"once", "-sinks", "-config", conf(db)}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
	n := count(t, srv, db, "pmta_queue")
	if n == 0 || !strings.Contains(errOut.String(), "once: sink influx: ") || !strings.Contains(errOut.String(), "0 refused, 0 dead-lettered, 0 dropped, 0 left queued") {
		t.Errorf("%d pmta_queue points stored; stderr:\n%s", n, errOut.String())
	}
	if out.String() != "" {
		t.Errorf("once -sinks printed points:\n%.300s", out.String())
	}

	errOut = syncBuffer{}
	if code := run([]string{"once", "-sinks", "-stall", "2s", "-config", conf("no_such_db")}, &out, &errOut); code != 1 {
		t.Fatalf("a missing database: exit %d, want 1:\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "sink influx took none of its") || !strings.Contains(errOut.String(), "left queued") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}
