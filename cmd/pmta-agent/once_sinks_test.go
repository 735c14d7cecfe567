package main

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// Accounting files: 70 records ten minutes ago, 100 half a minute ago.
	// The preview is the newest minute of closed intervals: the 100, said
	// on stderr and not sent.
	logs := filepath.Join(dir, "log")
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, LocalZone: noonZone()})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Write(70, time.Now().Add(-10*time.Minute)), w.Write(100, time.Now().Add(-30*time.Second)), w.Close()); err != nil {
		t.Fatal(err)
	}
	conf := func(bucket string) string {
		path := filepath.Join(dir, bucket+".yaml")
		writeTestFile(t, path, fmt.Sprintf(`server: once-sinks
state_dir: %s
listen: {enabled: false}
api: {enabled: true, url: %s}
acct: {enabled: true, globs: [%s]}
sinks:
  influx: {enabled: true, url: %s, bucket: %s/autogen}
`, filepath.Join(dir, "state"), api.URL, filepath.Join(logs, "*.csv"), srv.URL, bucket))
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
	if !strings.Contains(errOut.String(), "once: accounting preview: 100 records logged") {
		t.Errorf("no preview of the 100 newest records; stderr:\n%s", errOut.String())
	}
	// Said, not sent: the running agent's whole intervals are the data.
	if n := count(t, srv, db, "pmta_acct"); n != 0 {
		t.Errorf("once -sinks sent %d pmta_acct points: the preview is not for the sinks", n)
	}
	// The tailer's state is not touched: no checkpoint.
	if _, err := os.Stat(filepath.Join(dir, "state", "acct")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("once -sinks touched the tailer's state: %v", err)
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
