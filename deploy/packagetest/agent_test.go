package packagetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/internal/servertest"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// TestInstallEditStart is the "done when" short of a real systemd:
// the .deb unpacked as dpkg unpacks it; the packaged configuration, which
// refuses to run until it says where the data goes, edited in exactly one
// line; and the unit's ExecStart run as systemd runs it (its environment
// only, $NOTIFY_SOCKET for Type=notify, SIGTERM to stop) on a PowerMTA host
// made of the simulator and a PowerMTA configuration naming it. Points from
// both sources arrive in a real InfluxDB, in the database the packaged
// configuration names.
//
// What a test cannot take from the host it moves through the environment,
// as a drop-in's Environment= would: PowerMTA's configuration file, the
// state directory and the agent's own listener, to temporary places.
func TestInstallEditStart(t *testing.T) {
	set := packages(t)
	deb, _ := set.host(t)
	root := extractDeb(t, deb)
	b, err := os.ReadFile(filepath.Join(root, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	unit, err := parseUnit(b)
	if err != nil {
		t.Fatal(err)
	}
	srv := influxtest.Start(t)

	// The PowerMTA host: the web monitor and the accounting files.
	dir := t.TempDir()
	logs := filepath.Join(dir, "log", "pmta")
	s := sim.New(sim.Options{Seed: 12, Rate: -1})
	api := httptest.NewServer(s.Handler())
	defer api.Close()
	u, err := url.Parse(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: logs, LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	pmtaConf := filepath.Join(dir, "pmta-config")
	writeFile(t, pmtaConf, fmt.Sprintf("http-mgmt-port %s\nhttp-access 127.0.0.1 monitor\n<acct-file %s/acct.csv>\n    records d,b,t,tq,r,f,rb,rs\n</acct-file>\n", u.Port(), logs))

	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", // systemd's
		"PMTA_AGENT_PMTA__CONFIG=" + pmtaConf,
		"PMTA_AGENT_PMTA__WEBMON_CERT=" + filepath.Join(dir, "no-webmon.pem"),
		"PMTA_AGENT_STATE_DIR=" + filepath.Join(dir, "state"),
		fmt.Sprintf("PMTA_AGENT_LISTEN__ADDRESS=127.0.0.1:%d", servertest.FreePort(t)),
	}
	// The unit's command line with its paths in the unpacked package.
	args := strings.Fields(unit.one(t, "ExecStart"))
	for i, a := range args {
		if _, err := os.Stat(filepath.Join(root, a)); strings.HasPrefix(a, "/") && err == nil {
			args[i] = filepath.Join(root, a)
		}
	}
	bin, packaged := args[0], filepath.Join(root, conffile)
	if bin != filepath.Join(root, "usr", "bin", "pmta-agent") || !slices.Contains(args, packaged) {
		t.Fatalf("ExecStart=%s: not the packaged binary with the packaged configuration", unit.one(t, "ExecStart"))
	}

	// As installed, the configuration says where to set the data's
	// destination and refuses to run without it (exit 3: the unit does not
	// restart it).
	cmd := exec.Command(bin, "check-config", "-config", packaged)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(string(out), "sinks.influx.url") {
		t.Errorf("check-config on the configuration as installed: exit %d (%v), want 3 naming sinks.influx.url:\n%s", code, err, out)
	}

	// One line of YAML: the operator's InfluxDB.
	orig, err := os.ReadFile(packaged)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(orig, []byte(`url: ""`), []byte(fmt.Sprintf("url: %q", srv.URL)), 1)
	if n := changedLines(orig, edited); n != 1 {
		t.Fatalf("the edit changed %d lines, want 1:\n%s", n, edited)
	}
	writeFile(t, packaged, string(edited))
	db := databaseOf(t, edited)
	srv.CreateDatabase(db)

	// systemctl start: the unit's command line, its environment, and a
	// notification socket for Type=notify.
	notify := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	watchdog, err := time.ParseDuration(unit.one(t, "WatchdogSec") + "s")
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(bin, args[1:]...)
	agent.Env = append(env, "NOTIFY_SOCKET="+notify, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	var agentLog syncBuffer
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	defer func() {
		if agent.ProcessState == nil {
			_ = agent.Process.Kill()
			<-exited
		}
	}()
	if err := waitFor(states, exited, "READY=1", 30*time.Second); err != nil {
		t.Fatalf("%v; the agent's log:\n%s", err, agentLog.String())
	}

	// PowerMTA writes while the agent runs.
	const written = 10 * 100
	base := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	for i := range 10 {
		if err := w.Write(100, base.Add(time.Duration(i)*5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(90 * time.Second)
	var status, acct int64
	for time.Now().Before(deadline) {
		status, acct = query(t, srv, db, `SELECT count("up") FROM pmta_status`), query(t, srv, db, `SELECT sum("count") FROM pmta_acct`)
		if status > 0 && acct >= written {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the agent exited (%v); its log:\n%s", err, agentLog.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Logf("InfluxDB %s: %d pmta_status points, pmta_acct sums to %d records", db, status, acct)
	if status == 0 || acct != written {
		t.Errorf("in InfluxDB %s: %d pmta_status points (want some, from the API), pmta_acct sums to %d (want %d, the records written); the agent's log:\n%s",
			db, status, acct, written, agentLog.String())
	}

	// systemctl stop: KillSignal, within TimeoutStopSec.
	if sig := unit.one(t, "KillSignal"); sig != "SIGTERM" {
		t.Fatalf("KillSignal=%s", sig)
	}
	stop, err := time.ParseDuration(unit.one(t, "TimeoutStopSec") + "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(states, nil, "STOPPING=1", stop); err != nil {
		t.Error(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the agent exited with %v after SIGTERM; its log:\n%s", err, agentLog.String())
		}
	case <-time.After(stop):
		t.Errorf("the agent did not stop within TimeoutStopSec=%s; its log:\n%s", stop, agentLog.String())
	}
}

// waitFor waits for a notification that contains want among its lines.
func waitFor(states <-chan string, exited <-chan error, want string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case st, ok := <-states:
			if !ok {
				return fmt.Errorf("the notification socket closed before %s", want)
			}
			for _, line := range strings.Split(st, "\n") {
				if line == want {
					return nil
				}
			}
		case err := <-exited:
			return fmt.Errorf("the agent exited (%v) before %s", err, want)
		case <-timer.C:
			return fmt.Errorf("no %s within %s", want, timeout)
		}
	}
}

// databaseOf is the InfluxDB 1.8 database of the configuration's bucket
// (database/retention-policy).
func databaseOf(t *testing.T, yaml []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(yaml), "\n") {
		if _, rest, ok := strings.Cut(line, "bucket: "); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			db, _, _ := strings.Cut(rest, "/")
			return db
		}
	}
	t.Fatalf("no bucket in\n%s", yaml)
	return ""
}

// changedLines counts the lines that differ between two versions of a file
// of the same length in lines.
func changedLines(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	if len(la) != len(lb) {
		return max(len(la), len(lb))
	}
	n := 0
	for i := range la {
		if la[i] != lb[i] {
			n++
		}
	}
	return n
}

// query runs an InfluxQL aggregate and returns its first value, 0 for none.
func query(t *testing.T, srv *influxtest.Server, db, q string) int64 {
	t.Helper()
	series, err := srv.Query(db, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) == 0 || len(series[0].Values) == 0 || len(series[0].Values[0]) < 2 {
		return 0
	}
	n, _ := series[0].Values[0][1].(json.Number).Int64()
	return n
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer the agent's output and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
