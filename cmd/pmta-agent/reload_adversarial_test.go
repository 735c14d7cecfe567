package main

// Adversarial tests of the SIGHUP reload and once (from the review of
// 31ed3e4; each failed before its fix): the real
// binary, records flowing, reloads that replace the accounting tailer, and a
// comparison of the pmta_acct counts written to stdout with the records the
// simulator wrote. PMTA_ADV_BIN names a prebuilt binary (else it is built
// under $TMPDIR).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

type advAgent struct {
	t        *testing.T
	bin      string
	dir      string
	cfgPath  string
	outPath  string
	logPath  string
	cmd      *exec.Cmd
	exited   chan error
	starts   int
	template func(v map[string]string) string
	vars     map[string]string
}

func advBinary(t *testing.T) string {
	if b := os.Getenv("PMTA_ADV_BIN"); b != "" {
		return b
	}
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func (a *advAgent) writeConfig() {
	writeTestFile(a.t, a.cfgPath, a.template(a.vars))
}

func (a *advAgent) start() {
	t := a.t
	a.writeConfig()
	outf, err := os.OpenFile(a.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(a.bin, "run", "-config", a.cfgPath)
	a.cmd.Stdout, a.cmd.Stderr = outf, logf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.starts++
	n := a.starts
	a.exited = make(chan error, 1)
	go func() { err := a.cmd.Wait(); outf.Close(); logf.Close(); a.exited <- err }()
	a.waitLog(func(l string) bool { return strings.Count(l, "pmta-agent starting") >= n }, "start")
}

func (a *advAgent) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *advAgent) waitLog(cond func(string) bool, what string) {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond(a.log()) {
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %s; log:\n%s", what, advTail(a.log(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *advAgent) signal(s syscall.Signal) {
	if err := a.cmd.Process.Signal(s); err != nil {
		a.t.Fatal(err)
	}
}

func (a *advAgent) stop() error {
	a.signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		return err
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
		return fmt.Errorf("no exit within 60 s of SIGTERM")
	}
}

func (a *advAgent) total() int64 {
	var n int64
	for _, c := range acctCountsByEnv(a.t, a.outPath) {
		n += c
	}
	return n
}

func advTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func newAdvAgent(t *testing.T, vars map[string]string) *advAgent {
	dir := t.TempDir()
	a := &advAgent{t: t, bin: advBinary(t), dir: dir, cfgPath: filepath.Join(dir, "agent.yaml"),
		outPath: filepath.Join(dir, "out.lp"), logPath: filepath.Join(dir, "agent.log"), vars: map[string]string{
			"state":    filepath.Join(dir, "state"),
			"globs":    filepath.Join(dir, "log", "*.csv"),
			"interval": "1s", "top_diag": "20", "start_at": "beginning", "shutdown": "5s",
			"buffer": "{type: disk}", "level": "info", "isp_map": "{}", "stdout": "true", "influx": "", "acct_extra": "",
		}}
	for k, v := range vars {
		a.vars[k] = v
	}
	a.template = func(v map[string]string) string {
		return fmt.Sprintf(`server: adv
log_level: %s
log_format: json
state_dir: %s
self_interval: 1h
shutdown_timeout: %s
listen: {enabled: false}
api: {enabled: false}
acct: {enabled: true, start_at: %s, poll_every: 50ms, interval: %s, grace: 100ms, top_diag: %s, globs: [%s]%s}
sinks: {stdout: {enabled: %s, buffer: %s}%s}
pipeline: {isp_map: %s}
`, v["level"], v["state"], v["shutdown"], v["start_at"], v["interval"], v["top_diag"], v["globs"], v["acct_extra"], v["stdout"], v["buffer"], v["influx"], v["isp_map"])
	}
	t.Cleanup(func() {
		if a.cmd != nil && a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("agent log (tail):\n%s", advTail(a.log(), 6000))
		}
	})
	return a
}

// writer writes records at a steady pace into dir until stop is closed,
// rotating every rotateEvery writes (0: never); moveTo moves finished files.
type advWriter struct {
	w    *sim.AcctWriter
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	n    int64
}

func startWriter(t *testing.T, dir, moveTo string, rotateEvery int, perWrite int) *advWriter {
	w, err := sim.New(sim.Options{Seed: 11, Rate: -1}).NewAcctWriter(sim.AcctOptions{Dir: dir, MoveTo: moveTo, LocalZone: time.UTC, SplitDiag: true})
	if err != nil {
		t.Fatal(err)
	}
	aw := &advWriter{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(aw.done)
		for i := 1; ; i++ {
			select {
			case <-aw.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := w.Write(perWrite, time.Now()); err != nil {
				t.Error(err)
				return
			}
			aw.mu.Lock()
			aw.n += int64(perWrite)
			aw.mu.Unlock()
			if rotateEvery > 0 && i%rotateEvery == 0 {
				if err := w.Rotate(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	return aw
}

func (aw *advWriter) finish(t *testing.T) int64 {
	close(aw.stop)
	<-aw.done
	if err := aw.w.Close(); err != nil {
		t.Fatal(err)
	}
	return aw.n
}

// waitTotal waits until the agent wrote want records (or 20 s passed) and
// returns what it wrote.
// restartAndCount ends w, starts the stopped agent again so that it reads
// what is left, stops it, and fails unless every record w wrote is counted
// exactly once.
func (a *advAgent) restartAndCount(w *advWriter, what string) {
	a.t.Helper()
	written := w.finish(a.t)
	a.start()
	a.waitTotal(written)
	if err := a.stop(); err != nil {
		a.t.Errorf("exit: %v", err)
	}
	if got := a.total(); got != written {
		a.t.Errorf("%s: %d records counted, %d written", what, got, written)
	}
}

func (a *advAgent) waitTotal(want int64) int64 {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if a.total() >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything counted twice arrives too
	return a.total()
}

// The README lists acct interval among what a reload changes. The
// successor tailer loads a checkpoint whose open intervals were made at the
// old interval: 1s → 2s makes odd starts "not a multiple", the checkpoint is
// quarantined as corrupt, and the tailer starts afresh — with start_at
// beginning it reads every file again (counted twice), with end it skips
// what was not yet emitted (lost).
func TestAdversarialReloadIntervalChange(t *testing.T) {
	for _, startAt := range []string{"beginning", "end"} {
		t.Run(startAt, func(t *testing.T) {
			a := newAdvAgent(t, map[string]string{"start_at": startAt})
			a.start()
			w := startWriter(t, filepath.Join(a.dir, "log"), "", 0, 7)
			time.Sleep(1500 * time.Millisecond)
			a.vars["interval"] = "6s"
			a.writeConfig()
			a.signal(syscall.SIGHUP)
			a.waitLog(func(l string) bool { return strings.Contains(l, "configuration reloaded") }, "reload")
			time.Sleep(1 * time.Second)
			written := w.finish(t)
			got := a.waitTotal(written)
			if err := a.stop(); err != nil {
				t.Errorf("exit: %v", err)
			}
			got = a.total()
			if got != written {
				t.Errorf("interval 1s→6s by reload (start_at %s): %d records counted, %d written", startAt, got, written)
			}
			if l := a.log(); strings.Contains(l, "corrupt") {
				t.Logf("log says: %s", grepLines(l, "corrupt"))
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// 50 reloads in 5 s, each replacing the tailer (top_diag toggles), while
// records flow and files rotate into a move-to directory the globs watch.
func TestAdversarialReloadStorm(t *testing.T) {
	a := newAdvAgent(t, nil)
	a.vars["globs"] = filepath.Join(a.dir, "log", "*.csv") + ", " + filepath.Join(a.dir, "old", "*.csv")
	a.start()
	w := startWriter(t, filepath.Join(a.dir, "log"), filepath.Join(a.dir, "old"), 15, 5)
	for i := 0; i < 50; i++ {
		a.vars["top_diag"] = fmt.Sprint(20 + i%2)
		a.writeConfig()
		a.signal(syscall.SIGHUP)
		time.Sleep(100 * time.Millisecond)
	}
	written := w.finish(t)
	a.waitTotal(written)
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	got := a.total()
	reloads := strings.Count(a.log(), `"msg":"configuration reloaded"`)
	partial := strings.Count(a.log(), `"msg":"configuration reloaded in part"`)
	t.Logf("reloads: %d applied, %d in part; %d written, %d counted", reloads, partial, written, got)
	if got != written {
		t.Errorf("after a reload storm: %d records counted, %d written", got, written)
	}
}

// A buffer whose fsync comes later than shutdown_timeout: Settle fails, the
// old tailer runs on (Run again on the same Tailer). Files rotate, and one
// rotated file is deleted, while it is stopped.
func TestAdversarialReloadSettleFails(t *testing.T) {
	a := newAdvAgent(t, map[string]string{"shutdown": "1s",
		"buffer": "{type: disk, sync: interval, sync_every: 3s}"})
	a.vars["globs"] = filepath.Join(a.dir, "log", "*.csv") + ", " + filepath.Join(a.dir, "old", "*.csv")
	a.start()
	w := startWriter(t, filepath.Join(a.dir, "log"), filepath.Join(a.dir, "old"), 20, 5)
	for i := 0; i < 6; i++ {
		time.Sleep(700 * time.Millisecond)
		a.vars["top_diag"] = fmt.Sprint(20 + i%2)
		a.writeConfig()
		a.signal(syscall.SIGHUP)
	}
	written := w.finish(t)
	a.waitTotal(written)
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	got := a.total()
	t.Logf("runs on: %d; applied: %d; %d written, %d counted",
		strings.Count(a.log(), "runs on as it was"), strings.Count(a.log(), `"msg":"configuration reloaded"`), written, got)
	if got != written {
		t.Errorf("settle failing: %d records counted, %d written", got, written)
	}
}

// SIGTERM right after SIGHUP, several times, the agent restarted each time:
// exit 0 each time, no hang, every record counted once in the end.
func TestAdversarialReloadThenTerm(t *testing.T) {
	a := newAdvAgent(t, nil)
	w := startWriter(t, filepath.Join(a.dir, "log"), "", 25, 5)
	for i := 0; i < 6; i++ {
		a.start()
		time.Sleep(time.Duration(300+100*i) * time.Millisecond)
		a.vars["top_diag"] = fmt.Sprint(20 + i%2)
		a.writeConfig()
		a.signal(syscall.SIGHUP)
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
		start := time.Now()
		if err := a.stop(); err != nil {
			t.Errorf("run %d: exit: %v", i, err)
		}
		t.Logf("run %d: stopped in %s", i, time.Since(start))
	}
	a.restartAndCount(w, "reload then term")
}

// SIGTERM while a reload waits in Settle (the buffer's fsync is 3 s away):
// the agent must exit 0 within shutdown_timeout, say nothing to systemd after
// STOPPING=1, and count every record once (checked after a restart).
func TestAdversarialTermDuringSettle(t *testing.T) {
	a := newAdvAgent(t, map[string]string{"shutdown": "5s",
		"buffer": "{type: disk, sync: interval, sync_every: 3s}"})
	sockPath := filepath.Join(a.dir, "n.sock")
	notes := listenNotify(t, sockPath)
	t.Setenv("NOTIFY_SOCKET", sockPath)
	w := startWriter(t, filepath.Join(a.dir, "log"), "", 0, 5)
	a.start()
	time.Sleep(1500 * time.Millisecond)
	a.vars["top_diag"] = "21"
	a.writeConfig()
	a.signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	a.signal(syscall.SIGHUP) // a second one queued behind the first
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	t.Logf("stopped in %s", time.Since(start))
	time.Sleep(200 * time.Millisecond)
	got := notes()
	t.Logf("notifications: %s", got)
	if i := strings.Index(got, "STOPPING=1"); i >= 0 && strings.Contains(got[i:], "READY=1") {
		t.Errorf("READY=1 after STOPPING=1: %s", got)
	}
	t.Logf("log:\n%s", a.log())
	t.Setenv("NOTIFY_SOCKET", "")
	a.restartAndCount(w, "term during settle")
}

// An isp_map change whose acct handover fails (Settle times out) leaves the
// tailer with the old map, and the reloader records it so: a later reload of
// the same file tries the tailer again, and the pmta_acct points take the
// new isp tags without a restart.
func TestAdversarialISPMapAfterFailedSettle(t *testing.T) {
	a := newAdvAgent(t, map[string]string{"shutdown": "1s",
		"buffer": "{type: disk, sync: interval, sync_every: 3s}"})
	a.start()
	w := startWriter(t, filepath.Join(a.dir, "log"), "", 0, 5)
	time.Sleep(1500 * time.Millisecond)
	a.vars["isp_map"] = "{gmail.com: advisp, yahoo.com: advisp, hotmail.com: advisp, outlook.com: advisp}"
	a.writeConfig()
	a.signal(syscall.SIGHUP)
	a.waitLog(func(l string) bool { return strings.Contains(l, "configuration reloaded") }, "reload 1")
	time.Sleep(4 * time.Second) // every batch durable now
	a.signal(syscall.SIGHUP)    // the same file again: should finish the job
	a.waitLog(func(l string) bool { return strings.Count(l, "configuration reloaded") >= 2 }, "reload 2")
	time.Sleep(3 * time.Second)
	written := w.finish(t)
	a.waitTotal(written)
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	t.Logf("%s", grepLines(a.log(), "SIG"))
	t.Logf("%s", grepLines(a.log(), "reloaded"))
	isps := map[string]int{}
	eachPoint(t, a.outPath, func(m string, tags map[string]string, _ map[string]int64) {
		if m == "pmta_acct" {
			isps[tags["isp"]]++
		}
	})
	t.Logf("pmta_acct points by isp: %v", isps)
	if isps["advisp"] == 0 {
		t.Errorf("no pmta_acct point has the isp of the reloaded isp_map")
	}
}

// InfluxDB down with a memory buffer: the acct batches are not durable until
// InfluxDB acknowledges them, so every acct reload's Settle times out and
// the old tailer runs on; files rotate into a watched move-to directory
// meanwhile. Once InfluxDB is back, sum(count) must equal the records.
func TestAdversarialReloadInfluxDownMemory(t *testing.T) {
	for _, buf := range []string{"memory", "disk"} {
		t.Run(buf, func(t *testing.T) {
			srv := influxtest.Start(t)
			db := "adv"
			srv.CreateDatabase(db)
			a := newAdvAgent(t, map[string]string{"shutdown": "1s", "stdout": "false", "buffer": "{}", "level": "debug",
				"influx": fmt.Sprintf(", influx: {enabled: true, url: %s, bucket: %s/autogen, timeout: 1s, buffer: {type: %s, min_backoff: 100ms, max_backoff: 500ms}}", srv.URL, db, buf)})
			a.vars["globs"] = filepath.Join(a.dir, "log", "*.csv") + ", " + filepath.Join(a.dir, "old", "*.csv")
			a.start()
			w := startWriter(t, filepath.Join(a.dir, "log"), filepath.Join(a.dir, "old"), 30, 5)
			time.Sleep(1500 * time.Millisecond)
			srv.Stop()
			for i := 0; i < 8; i++ {
				a.vars["top_diag"] = fmt.Sprint(20 + i%2)
				a.writeConfig()
				a.signal(syscall.SIGHUP)
				time.Sleep(600 * time.Millisecond)
			}
			srv.Restart()
			for i := 0; i < 5; i++ {
				a.vars["top_diag"] = fmt.Sprint(22 + i%2)
				a.writeConfig()
				a.signal(syscall.SIGHUP)
				time.Sleep(300 * time.Millisecond)
			}
			written := w.finish(t)
			sum := func() int64 {
				series, err := srv.Query(db, `SELECT sum("count") FROM pmta_acct`)
				if err != nil || len(series) == 0 || len(series[0].Values) == 0 {
					return -1
				}
				n, _ := series[0].Values[0][1].(json.Number).Int64()
				return n
			}
			deadline := time.Now().Add(30 * time.Second)
			for sum() < written && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if err := a.stop(); err != nil {
				t.Errorf("exit: %v", err)
			}
			got := sum()
			t.Logf("runs on: %d, applied: %d; written %d, in InfluxDB %d", strings.Count(a.log(), "runs on as it was"),
				strings.Count(a.log(), `"msg":"configuration reloaded"`), written, got)
			if got != written {
				t.Errorf("InfluxDB holds %d records, %d written", got, written)
			}
			checkJSONLog(t, a.log())
		})
	}
}

// `once -sinks` beside a running agent, just after PowerMTA rotated its
// accounting file in the middle of an interval: the preview reads only the
// newest file, so the interval the rotation cut holds only the new file's
// part of it — and its points overwrite the agent's complete ones in
// InfluxDB (README: "InfluxDB overwrites them with equal values").
func TestAdversarialOnceSinksAfterRotation(t *testing.T) {
	srv := influxtest.Start(t)
	db := "adv"
	srv.CreateDatabase(db)
	a := newAdvAgent(t, map[string]string{"stdout": "false", "buffer": "{}", "interval": "10s",
		"influx": fmt.Sprintf(", influx: {enabled: true, url: %s, bucket: %s/autogen, timeout: 2s, buffer: {type: disk, min_backoff: 100ms, max_backoff: 500ms}}", srv.URL, db)})
	a.start()
	// Rotate 5 s into a 10 s interval.
	for time.Now().UnixMilli()%10000 > 200 {
		time.Sleep(20 * time.Millisecond)
	}
	w := startWriter(t, filepath.Join(a.dir, "log"), "", 0, 1)
	time.Sleep(5 * time.Second)
	if err := w.w.Rotate(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	written := w.finish(t)
	sum := func() int64 {
		series, err := srv.Query(db, `SELECT sum("count") FROM pmta_acct`)
		if err != nil || len(series) == 0 || len(series[0].Values) == 0 {
			return -1
		}
		n, _ := series[0].Values[0][1].(json.Number).Int64()
		return n
	}
	deadline := time.Now().Add(40 * time.Second)
	for sum() < written && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	before := sum()
	out, err := exec.Command(a.bin, "once", "-sinks", "-config", a.cfgPath).CombinedOutput()
	t.Logf("once -sinks: err %v\n%s", err, out)
	time.Sleep(500 * time.Millisecond)
	after := sum()
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	t.Logf("written %d; InfluxDB before once -sinks %d, after %d", written, before, after)
	if before != written || after != written {
		t.Errorf("InfluxDB sum(count): %d before once -sinks, %d after; %d records written", before, after, written)
	}
}

// `once -sinks` beside a running agent whose view caps its domains per UTC
// day (pmta_acct_domain: max_domains 500 by default; 3 here): the agent
// admitted the day's first domains, the preview's fresh aggregator admits
// the biggest of its own window, so its points are other series than the
// agent's, and InfluxDB's sums over the view change.
func TestAdversarialOnceSinksViewCap(t *testing.T) {
	srv := influxtest.Start(t)
	db := "adv"
	srv.CreateDatabase(db)
	a := newAdvAgent(t, map[string]string{"stdout": "false", "buffer": "{}", "interval": "10s",
		"acct_extra": ", views: [{name: pmta_acct, tags: [type, isp]}, {name: pmta_acct_domain, tags: [type, domain], max_domains: 3}]",
		"influx":     fmt.Sprintf(", influx: {enabled: true, url: %s, bucket: %s/autogen, timeout: 2s, buffer: {type: disk, min_backoff: 100ms, max_backoff: 500ms}}", srv.URL, db)})
	// Earlier today: a few records, whose domains the agent admits first.
	early, err := sim.New(sim.Options{Seed: 99, Rate: -1}).NewAcctWriter(sim.AcctOptions{Dir: filepath.Join(a.dir, "early"), LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if err := early.Write(4, time.Now().Add(-3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	_ = early.Close()
	a.vars["globs"] = filepath.Join(a.dir, "log", "*.csv") + ", " + filepath.Join(a.dir, "early", "*.csv")
	a.start()
	w := startWriter(t, filepath.Join(a.dir, "log"), "", 0, 1)
	time.Sleep(25 * time.Second)
	written := w.finish(t)
	sum := func(m string) int64 {
		series, err := srv.Query(db, `SELECT sum("count") FROM `+m)
		if err != nil || len(series) == 0 || len(series[0].Values) == 0 {
			return -1
		}
		n, _ := series[0].Values[0][1].(json.Number).Int64()
		return n
	}
	deadline := time.Now().Add(40 * time.Second)
	for sum("pmta_acct_domain") < written && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	before := sum("pmta_acct_domain")
	out, err := exec.Command(a.bin, "once", "-sinks", "-config", a.cfgPath).CombinedOutput()
	t.Logf("once -sinks: err %v\n%s", err, out)
	time.Sleep(500 * time.Millisecond)
	after := sum("pmta_acct_domain")
	if err := a.stop(); err != nil {
		t.Errorf("exit: %v", err)
	}
	t.Logf("written %d; pmta_acct_domain in InfluxDB before once -sinks %d, after %d (pmta_acct %d)", written, before, after, sum("pmta_acct"))
	if before != written+4 || after != written+4 {
		t.Errorf("InfluxDB sum(count) of pmta_acct_domain: %d before once -sinks, %d after; %d records written", before, after, written)
	}
}
