package deadletter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestKeepWritesLineProtocolWithTheReason(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deadletter")
	d := Open(dir, "influx", 0)
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("Open created the directory before anything was refused")
	}
	d.now = func() time.Time { return time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC) }
	ts := time.Unix(1705332300, 0)
	good := agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "caf\xe9.com"}}, []agent.Field{{Key: "count", Value: int64(3)}}, ts)
	noField := agent.NewPoint("pmta_acct", []agent.Tag{{Key: "domain", Value: "x.com"}}, nil, ts)
	if err := d.Keep([]agent.Point{good, noField}, "refused for good by sink influx: HTTP 400:\nunable to parse"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := "# 2026-11-29T17:00:00Z refused for good by sink influx: HTTP 400: unable to parse\n" +
		"pmta_acct,domain=caf\uFFFD.com count=3i 1705332300000000000\n" +
		"# not line protocol (no field line protocol can carry): pmta_acct{domain=\"x.com\"}  @ 1705332300 s\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, d.Path(): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, mode)
		}
	}
}

func TestKeepRotatesAtTheBound(t *testing.T) {
	dir := t.TempDir()
	d := Open(dir, "otlp", 300)
	defer d.Close()
	p := agent.NewPoint("m", []agent.Tag{{Key: "t", Value: strings.Repeat("x", 100)}}, []agent.Field{{Key: "f", Value: 1.5}}, time.Unix(1, 0))
	for i := range 5 {
		if err := d.Keep([]agent.Point{p}, "reason"); err != nil {
			t.Fatalf("keep %d: %v", i, err)
		}
	}
	cur, err1 := os.Stat(d.Path())
	old, err2 := os.Stat(d.Path() + ".1")
	if err1 != nil || err2 != nil {
		t.Fatalf("want %s and its .1: %v %v", d.Path(), err1, err2)
	}
	if cur.Size() > 300 || old.Size() > 300 {
		t.Errorf("files of %d and %d bytes, bound 300", cur.Size(), old.Size())
	}
}
