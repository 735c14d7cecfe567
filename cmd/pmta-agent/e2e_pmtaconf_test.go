package main

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// On a host with PowerMTA, a two-line YAML (where the data goes) collects
// both sources: the API where PowerMTA's configuration says it listens, and
// the accounting files of its <acct-file> blocks, rotated and moved.
func TestTwoLineConfigOnAPowerMTAHost(t *testing.T) {
	srv := influxtest.Start(t)
	db := "pmta_two_lines"
	srv.CreateDatabase(db)
	dir := t.TempDir()
	logs, moved := filepath.Join(dir, "log"), filepath.Join(dir, "done")

	s := sim.New(sim.Options{Seed: 21, Rate: -1})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	u, err := url.Parse(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, MoveTo: moved, MaxSize: 128 << 10, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	const written = 20 * 150

	pmtaConf := filepath.Join(dir, "pmta-config")
	writeTestFile(t, pmtaConf, fmt.Sprintf(`# PowerMTA, as an operator wrote it
http-mgmt-port %s
http-access 127.0.0.1 monitor
http-access 0/0 none
<acct-file %s/acct.csv>
    records d,b,t,tq,r,f,rb,rs
    move-to %s
    max-size 128k
</acct-file>
`, u.Port(), logs, moved))
	agentConf := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, agentConf, fmt.Sprintf("sinks:\n  influx: {enabled: true, url: %s, bucket: %s/autogen}\n", srv.URL, db))

	// The environment only moves what a host keeps in /etc and /var/lib.
	cfg, err := config.Load(agentConf, []string{
		"PMTA_AGENT_PMTA__CONFIG=" + pmtaConf,
		"PMTA_AGENT_PMTA__WEBMON_CERT=" + filepath.Join(dir, "no-cert.pem"),
		"PMTA_AGENT_STATE_DIR=" + filepath.Join(dir, "state"),
		"PMTA_AGENT_LISTEN__ENABLED=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Derived == nil || cfg.API.URL != "http://127.0.0.1:"+u.Port() || !cfg.Acct.Enabled {
		t.Fatalf("derived %+v, api %s, acct %v", cfg.Derived, cfg.API.URL, cfg.Acct.Enabled)
	}
	// check-config shows the same derivation, each setting with its line.
	t.Setenv("PMTA_AGENT_PMTA__CONFIG", pmtaConf)
	t.Setenv("PMTA_AGENT_PMTA__WEBMON_CERT", filepath.Join(dir, "no-cert.pem"))
	var stdout, stderr syncBuffer
	if code := run([]string{"check-config", "-config", agentConf}, &stdout, &stderr); code != 0 {
		t.Fatalf("check-config exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"from PowerMTA's configuration " + pmtaConf, "api.url  (" + pmtaConf + ":2: http-mgmt-port",
		"acct.globs  (" + pmtaConf + ":5 (" + logs + "/acct.csv, records d,b,t,tq,r,f,rb,rs))", "configuration OK"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check-config does not say %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "note: "+pmtaConf+":2: no web monitor certificate") {
		t.Errorf("check-config notes:\n%s", stderr.String())
	}
	// init prints what run would use, derived lines marked, exit 0.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	if code := run([]string{"init", "-config", agentConf, "-pmta-config", pmtaConf}, &stdout, &stderr); code != 0 {
		t.Fatalf("init exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{`url: "http://127.0.0.1:` + u.Port() + `"  # from PowerMTA's config: ` + pmtaConf + ":2: http-mgmt-port",
		"enabled: true  # from PowerMTA's config: " + pmtaConf + ":5: <acct-file>", "url: \"" + srv.URL + "\""} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("init does not print %q:\n%s", want, stdout.String())
		}
	}
	// PowerMTA writes while the agent runs (start_at: end skips what a
	// first start finds), rotating by size and moving finished files.
	go func() {
		time.Sleep(500 * time.Millisecond)
		base := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
		for i := range 20 {
			_ = w.Write(150, base.Add(time.Duration(i)*9*time.Second))
		}
		_ = w.Close()
	}()
	runUntil(t, cfg, func() bool {
		return count(t, srv, db, "pmta_status") > 0 && viewTotal(t, srv, db, "pmta_acct") >= written
	})
	if got := viewTotal(t, srv, db, "pmta_acct"); got != written {
		t.Errorf("pmta_acct sums to %d, written %d", got, written)
	}
	if n := count(t, srv, db, "pmta_queue"); n == 0 {
		t.Error("no pmta_queue points from the API")
	}
	if _, err := os.Stat(moved); err != nil {
		t.Errorf("the writer moved no file: %v", err)
	}
}
