package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

// buildAgent compiles cmd/pmta-agent into dir; the build cache makes every
// run after the first take a second or two.
func buildAgent(t testing.TB, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pmta-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pmta-agent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pmta-agent: %v\n%s", err, out)
	}
	return bin
}

// agentSpec is what differs between the agent processes of a test.
type agentSpec struct {
	server    string
	apiURL    string
	acctDir   string // "" turns the accounting tailer off
	statusOff bool   // poll /status only (no queue, domain or vmta listings)
	memPoints int    // >0: an in-memory sink buffer of this many points; 0: the default disk queue
	listen    string // the agent's own listener, "" for off
	relay     string // the relay's tokens file (needs listen), "" for off
}

// agentConfig renders a configuration file with every key the test relies
// on spelled out, as an operator would write it.
func agentConfig(sp agentSpec, stateDir, influxURL, db string) string {
	acct := "  enabled: false\n"
	if sp.acctDir != "" {
		acct = fmt.Sprintf(`  enabled: true
  globs:
    - %s
    - %s
  start_at: beginning
  interval: 10s
  grace: 1s
  poll_every: 250ms
  top_diag: 20
  verdict:
    enabled: true
    window: 15m
    every: 1m
    min_attempts: 200
    warn_pct: 5
`, filepath.Join(sp.acctDir, "acct-*.csv"), filepath.Join(sp.acctDir, "diag-*.csv"))
	}
	listen := "  enabled: false\n"
	if sp.listen != "" {
		listen = fmt.Sprintf("  enabled: true\n  address: %s\n", sp.listen)
	}
	if sp.relay != "" {
		listen += relayConfig(sp.relay)
	}
	buffer := "      type: disk\n"
	if sp.memPoints > 0 {
		buffer = fmt.Sprintf("      type: memory\n      max_points: %d\n", sp.memPoints)
	}
	lists := "true"
	if sp.statusOff {
		lists = "false"
	}
	return fmt.Sprintf(`server: %s
log_level: warn
state_dir: %s
shutdown_timeout: 5s
self_interval: 1s
listen:
%sapi:
  enabled: true
  url: %s
  dialect: pmta
  format: json
  interval: 1s
  timeout: 900ms
  jitter: 0s
  max_items: 1000
  endpoints:
    status: true
    queues: %s
    domains: %s
    vmtas: %s
acct:
%spipeline:
  max_domains: 500
sinks:
  stdout:
    enabled: false
  influx:
    enabled: true
    url: %s
    bucket: %s/autogen
    gzip: true
    batch_size: 5000
    timeout: 5s
    buffer:
%s      min_backoff: 100ms
      max_backoff: 500ms
`, sp.server, stateDir, listen, sp.apiURL, lists, lists, lists, acct, influxURL, db, buffer)
}

// agentProc is one running pmta-agent.
type agentProc struct {
	name   string
	config string // its configuration file
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	done   chan error
}

// startAgent runs `pmta-agent run -config …` and stops it when the test ends.
func startAgent(t *testing.T, bin string, sp agentSpec, influxURL, db string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pmta-agent.yaml")
	if err := os.WriteFile(cfg, []byte(agentConfig(sp, filepath.Join(dir, "state"), influxURL, db)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{name: sp.server, config: cfg, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "run", "-config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", sp.server, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for the agent to drain and exit; a second
// call does nothing.
func (p *agentProc) stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("agent %s exited with %v; its log:\n%s", p.name, err, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("agent %s did not stop within 15s of SIGTERM; its log:\n%s", p.name, p.logs.String())
	}
	p.cmd = nil
}

// alive fails the test when the agent has already exited.
func (p *agentProc) alive(t testing.TB) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("agent %s exited early (%v); its log:\n%s", p.name, err, p.logs.String())
	default:
	}
}

// simServer is one simulated PowerMTA with its web monitor and its
// accounting directory.
type simServer struct {
	sim     *sim.Sim
	url     string
	acctDir string
	written int64     // accounting records written
	end     time.Time // the time after the last of them
}

// newSimServer starts a simulator; it runs on the real clock, so the agent's
// rates and the accounting timestamps line up with InfluxDB's now().
func newSimServer(t *testing.T, seed int64) *simServer {
	t.Helper()
	s := sim.New(sim.Options{Seed: seed})
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	return &simServer{sim: s, url: api.URL, acctDir: t.TempDir()}
}

// writeAcct logs perSecond records for every second of the span before
// now, so that 15-minute windows are full, and closes the files. A change
// that is not nil runs half-way, before the records of that second, which
// writeAcct returns: the time of a change an operator made.
func (s *simServer) writeAcct(t *testing.T, span time.Duration, perSecond int, change func()) time.Time {
	t.Helper()
	w, err := s.sim.NewAcctWriter(sim.AcctOptions{Dir: s.acctDir, SplitDiag: true})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Truncate(time.Second)
	mid := end.Add(-span / 2).Truncate(time.Second)
	for at := end.Add(-span); at.Before(end); at = at.Add(time.Second) {
		if at.Equal(mid) && change != nil {
			change()
		}
		if err := w.Write(perSecond, at); err != nil {
			t.Fatal(err)
		}
		s.written += int64(perSecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s.end = end
	return mid
}

// startInflux starts a real InfluxDB with an empty database.
func startInflux(t *testing.T, db string) *influxtest.Server {
	t.Helper()
	srv := influxtest.Start(t)
	srv.CreateDatabase(db)
	return srv
}

// scalar runs a query expected to return one number (or none, as 0).
func scalar(t testing.TB, srv *influxtest.Server, db, q string) float64 {
	t.Helper()
	series, err := srv.Query(db, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) == 0 || len(series[0].Values) == 0 || len(series[0].Values[0]) < 2 {
		return 0
	}
	n, ok := series[0].Values[0][1].(json.Number)
	if !ok {
		return 0
	}
	f, _ := n.Float64()
	return f
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, procs []*agentProc, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		for _, p := range procs {
			p.alive(t)
		}
		select {
		case <-ctx.Done():
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "--- agent %s:\n%s", p.name, p.logs.String())
			}
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freeAddr returns a loopback host:port nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
