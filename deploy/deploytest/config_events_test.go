package deploytest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// changePowerMTAConfig makes the agent's watcher of PowerMTA's
// configuration see an operator's edit — a rate raised in an included
// file — and writes its config_change points into the test database, as
// server: the events the dashboards' configuration layer shows.
func changePowerMTAConfig(t *testing.T, srv *influxtest.Server, server string) {
	t.Helper()
	dir := t.TempDir()
	main := filepath.Join(dir, "config")
	inc := filepath.Join(dir, "domains.conf")
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(main, "http-mgmt-port 8080\ninclude "+inc+"\n")
	write(inc, "<domain gmail.com>\n  max-msg-rate 250/h\n</domain>\n")
	w, err := confwatch.New(confwatch.Config{Path: main, Interval: time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var lines []byte
	w.SetEmit(func(b agent.Batch) {
		for _, p := range b.Points {
			p.SetTag("server", server) // the pipeline's part
			lines = append(lines, agent.LineProtocol([]agent.Point{p})...)
		}
	})
	ctx := context.Background()
	if _, err := w.Check(ctx); err != nil { // the state at start
		t.Fatal(err)
	}
	write(inc, "<domain gmail.com>\n  max-msg-rate 500/h\n</domain>\n")
	changes, err := w.Check(ctx)
	if err != nil || len(changes) != 1 || changes[0].String() != "<domain gmail.com> max-msg-rate 250/h → 500/h" {
		t.Fatalf("changes %v, %v", changes, err)
	}
	if err := srv.Write(testDB, string(lines)); err != nil {
		t.Fatal(err)
	}
}
