package fleettest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a process of the fleet, its output in a log file. It is not safe
// for concurrent use.
type proc struct {
	what string
	bin  string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

func newProc(what, logPath string, env []string, bin string, args ...string) *proc {
	return &proc{what: what, bin: bin, args: args, env: env, log: logPath}
}

// start runs the process; stdout, when not nil, receives its standard output
// instead of the log file.
func (p *proc) start(t testing.TB, stdout io.Writer) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p.log), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.what, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); f.Close(); close(done) }(p.done)
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop sends SIGTERM and waits up to timeout, then kills; the error says
// whether it exited cleanly.
func (p *proc) stop(timeout time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	cmd := p.cmd
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not stop within %s", p.what, timeout)
	}
	p.cmd = nil
	if !cmd.ProcessState.Success() {
		return fmt.Errorf("%s: %s", p.what, cmd.ProcessState)
	}
	return nil
}

// waitReady polls ready until it holds, or fails the test with the log.
func (p *proc) waitReady(t testing.TB, timeout time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ready() {
		if !p.running() {
			t.Fatalf("%s exited at start; its log:\n%s", p.what, p.tail(8192))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s; its log:\n%s", p.what, timeout, p.tail(8192))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rssKiB is the process's resident set in KiB, 0 when unknown.
func (p *proc) rssKiB() int64 {
	if !p.running() {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// tail is the last n bytes of the log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// buildFleetBinaries compiles pmta-agent and pmta-sim into dir.
func buildFleetBinaries(t testing.TB, dir string) (agentBin, simBin string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/pmta-agent/pmta-agent/cmd/pmta-agent", "github.com/pmta-agent/pmta-agent/cmd/pmta-sim")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "pmta-agent"), filepath.Join(dir, "pmta-sim")
}

// startSim runs pmta-sim on a loopback port chosen by the kernel and returns
// its API URL, read from the line the simulator prints once it listens.
func startSim(t testing.TB, p *proc) string {
	t.Helper()
	pr, pw := io.Pipe()
	p.start(t, pw)
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if _, rest, ok := strings.Cut(line, "listening on "); ok && !sent {
				urlc <- strings.Fields(rest)[0]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func(done chan struct{}) { <-done; pw.Close() }(p.done)
	select {
	case u := <-urlc:
		return u
	case <-p.done:
		t.Fatalf("%s exited at start; its log:\n%s", p.what, p.tail(4096))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30 s; its log:\n%s", p.what, p.tail(4096))
	}
	return ""
}

// httpOK reports whether GET url answers 200.
func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// scrapeSum sums the samples of every metric whose name is name, whatever
// their labels, from a Prometheus text exposition; ok is false when there
// is none.
func scrapeSum(text []byte, name string) (sum float64, ok bool) {
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' || !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		if len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name with this prefix
		}
		fields := bytes.Fields(rest[bytes.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}
