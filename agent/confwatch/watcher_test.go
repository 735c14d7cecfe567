package confwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/logtest"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// rig is a PowerMTA configuration in a temporary directory and a watcher
// on it whose events are collected.
type rig struct {
	t    *testing.T
	dir  string
	w    *Watcher
	logs *logtest.Recorder

	mu      sync.Mutex
	batches []agent.Batch
}

func newRig(t *testing.T, files map[string]string) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), logs: logtest.New()}
	for name, text := range files {
		r.write(name, text)
	}
	w, err := New(Config{Path: filepath.Join(r.dir, "config")}, r.logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	w.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	w.SetEmit(func(b agent.Batch) {
		r.mu.Lock()
		r.batches = append(r.batches, b)
		r.mu.Unlock()
	})
	r.w = w
	return r
}

// write writes a file in place, as "echo >" or a simple editor does.
func (r *rig) write(name, text string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// replace writes a temporary file and renames it into place, as vim,
// emacs and configuration management tools save.
func (r *rig) replace(name, text string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".swp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		r.t.Fatal(err)
	}
}

// check runs one Check that must not fail and returns its change strings.
func (r *rig) check() []string {
	r.t.Helper()
	cs, err := r.w.Check(context.Background())
	if err != nil {
		r.t.Fatalf("check: %v", err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func (r *rig) take() []agent.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

func (r *rig) stat(key string) int64 {
	for _, f := range r.w.Stats() {
		if f.Key == key {
			return f.Value.(int64)
		}
	}
	r.t.Fatalf("no stat %s", key)
	return 0
}

func wantChanges(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: changes\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const mainConfig = `http-mgmt-port 8080
http-access 127.0.0.1 monitor
include conf.d/*.conf
include vmtas.inc
`

const vmtas = `<virtual-mta vmta-gm-011>
    smtp-source-host 203.0.113.11 mta011.shop.example
</virtual-mta>
<virtual-mta-pool pool-gmail>
    virtual-mta vmta-gm-011
</virtual-mta-pool>
`

const domains = `domain-macro gmail gmail.com,googlemail.com
<domain $gmail>
    max-msg-rate 250/h
</domain>
`

// An included file edited in place, then replaced by a rename, a file
// appearing under an include pattern and leaving it, an include removed:
// each is reported once, in PowerMTA's terms, as points and log lines.
func TestWatchIncludes(t *testing.T) {
	r := newRig(t, map[string]string{"config": mainConfig, "vmtas.inc": vmtas, "conf.d/domains.conf": domains})
	wantChanges(t, "baseline", r.check())
	wantChanges(t, "nothing changed", r.check())
	if b := r.take(); len(b) != 0 {
		t.Fatalf("events without a change: %+v", b)
	}
	if n := r.stat("files"); n != 3 {
		t.Errorf("files %d, want 3", n)
	}

	r.write("conf.d/domains.conf", strings.Replace(domains, "250/h", "500/h", 1))
	wantChanges(t, "edited in place", r.check(), "<domain $gmail> max-msg-rate 250/h → 500/h")
	batches := r.take()
	if len(batches) != 1 || len(batches[0].Points) != 1 || batches[0].Source != "pmta_config" {
		t.Fatalf("batches %+v", batches)
	}
	p := batches[0].Points[0]
	wantPoint := agent.NewPoint("pmta_event",
		[]agent.Tag{{Key: "kind", Value: "config_change"}, {Key: "block", Value: "<domain $gmail>"}, {Key: "directive", Value: "max-msg-rate"}},
		[]agent.Field{
			{Key: "change", Value: "<domain $gmail> max-msg-rate 250/h → 500/h"}, {Key: "op", Value: "changed"},
			{Key: "old", Value: "250/h"}, {Key: "new", Value: "500/h"},
			{Key: "file", Value: filepath.Join(r.dir, "conf.d/domains.conf")}, {Key: "line", Value: int64(3)},
			{Key: "count", Value: int64(1)},
		}, time.Date(2024, 1, 15, 10, 0, 3, 0, time.UTC))
	if fmt.Sprint(p) != fmt.Sprint(wantPoint) {
		t.Errorf("point\n%+v\nwant\n%+v", p, wantPoint)
	}
	logged := r.logs.Take()
	if i := slices.IndexFunc(logged, func(rec logtest.Record) bool { return rec.Msg == "PowerMTA configuration changed" }); i < 0 ||
		!strings.Contains(logged[i].String(), "change=<domain $gmail> max-msg-rate 250/h → 500/h") || logged[i].Level.String() != "INFO" ||
		!strings.Contains(logged[i].String(), "block=<domain $gmail>") || !strings.Contains(logged[i].String(), "directive=max-msg-rate") {
		t.Errorf("log:\n%v", logged)
	}

	r.replace("vmtas.inc", strings.Replace(vmtas, "    virtual-mta vmta-gm-011\n", "    virtual-mta vmta-gm-011\n    virtual-mta vmta-gm-012\n", 1))
	wantChanges(t, "renamed into place", r.check(), "<virtual-mta-pool pool-gmail> virtual-mta vmta-gm-012 added")

	r.write("conf.d/yahoo.conf", "<domain yahoo.com>\n    max-smtp-out 4\n</domain>\n")
	wantChanges(t, "a file the pattern now matches", r.check(), "<domain yahoo.com> added")
	if err := os.Remove(filepath.Join(r.dir, "conf.d/yahoo.conf")); err != nil {
		t.Fatal(err)
	}
	wantChanges(t, "a file the pattern no longer matches", r.check(), "<domain yahoo.com> removed")

	r.replace("config", strings.Replace(mainConfig, "include vmtas.inc\n", "", 1))
	wantChanges(t, "an include removed", r.check(), "<virtual-mta vmta-gm-011> removed", "<virtual-mta-pool pool-gmail> removed")
	if n := r.stat("files"); n != 2 {
		t.Errorf("files %d, want 2", n)
	}
	// The file the include named is no longer watched.
	r.write("vmtas.inc", "garbage <")
	wantChanges(t, "a file no longer included", r.check())

	if got := r.stat("changes"); got != 6 {
		t.Errorf("changes %d, want 6", got)
	}
	if got := r.stat("checks"); got != 8 {
		t.Errorf("checks %d, want 8", got)
	}
	if got := r.stat("last_change_unix"); got != time.Date(2024, 1, 15, 10, 0, 7, 0, time.UTC).Unix() {
		t.Errorf("last_change_unix %d", got)
	}
}

// An edit undone before the next check, and an edit to comments and
// spacing only, are no events.
func TestWatchNoChange(t *testing.T) {
	r := newRig(t, map[string]string{"config": mainConfig, "vmtas.inc": vmtas, "conf.d/domains.conf": domains})
	r.check()
	r.write("conf.d/domains.conf", strings.Replace(domains, "250/h", "500/h", 1))
	r.write("conf.d/domains.conf", domains)
	wantChanges(t, "changed and changed back", r.check())
	r.replace("conf.d/domains.conf", "# a comment\n"+strings.ReplaceAll(domains, "    ", "\t"))
	wantChanges(t, "comments and blanks", r.check())
	if b := r.take(); len(b) != 0 {
		t.Errorf("events: %+v", b)
	}
	if n := r.stat("changes"); n != 0 {
		t.Errorf("changes %d", n)
	}
}

// A configuration that cannot be read or parsed is counted and logged once
// an episode, emits nothing and leaves the last good version as the
// baseline: once repaired, the change is against what was last good.
func TestWatchBrokenFile(t *testing.T) {
	r := newRig(t, map[string]string{"config": mainConfig, "vmtas.inc": vmtas, "conf.d/domains.conf": domains})
	r.check()
	r.write("conf.d/domains.conf", "<domain $gmail>\n    max-msg-rate 900/h\n") // never closed
	for range 3 {
		if _, err := r.w.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "never closed") {
			t.Fatalf("err %v", err)
		}
	}
	if err := os.Remove(filepath.Join(r.dir, "vmtas.inc")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.w.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "vmtas.inc") {
		t.Fatalf("missing include: err %v", err)
	}
	if b := r.take(); len(b) != 0 {
		t.Errorf("events from a broken file: %+v", b)
	}
	if n := r.stat("errors"); n != 4 {
		t.Errorf("errors %d, want 4", n)
	}
	if n := r.logs.Count("cannot read PowerMTA configuration"); n != 1 {
		t.Errorf("%d warnings for one episode:\n%s", n, r.logs)
	}
	r.write("vmtas.inc", vmtas)
	r.write("conf.d/domains.conf", strings.Replace(domains, "250/h", "300/h", 1))
	wantChanges(t, "repaired", r.check(), "<domain $gmail> max-msg-rate 250/h → 300/h")
	if n := r.logs.Count("PowerMTA configuration readable again"); n != 1 {
		t.Errorf("no recovery line:\n%s", r.logs)
	}
	// A config unreadable from the start: the first good read is the
	// baseline, no events.
	r2 := newRig(t, map[string]string{"config": "include missing.conf\n"})
	if _, err := r2.w.Check(context.Background()); err == nil {
		t.Fatal("a missing include is no error")
	}
	r2.write("missing.conf", domains)
	wantChanges(t, "first good read", r2.check())
}

// secrets are those the test configuration holds.
var secretValues = []string{"k3y_for_the_agent_0123456789abcdef", "n3w_key_for_the_agent_9876543210fedcba", "hunter2-smarthost", "hunter3-smarthost"}

// No secret reaches a point or a log line: not in a change, not in the
// text of a parse error that quotes its line.
func TestWatchMasksSecrets(t *testing.T) {
	before := `http-api-key k3y_for_the_agent_0123456789abcdef
<domain smarthost.example>
    auth-username relay
    auth-password hunter2-smarthost
    route smtp://relay:hunter2-smarthost@smarthost.example:587
</domain>
`
	r := newRig(t, map[string]string{"config": before})
	r.check()
	after := strings.NewReplacer("k3y_for_the_agent_0123456789abcdef", "n3w_key_for_the_agent_9876543210fedcba", "hunter2", "hunter3").Replace(before)
	r.write("config", after)
	wantChanges(t, "secrets", r.check(),
		"http-api-key ***** → *****",
		"<domain smarthost.example> auth-password ***** → *****",
		"<domain smarthost.example> route smtp://relay:*****@smarthost.example:587 → smtp://relay:*****@smarthost.example:587")
	// A broken line quoting the key: the error names the line, not the key.
	r.write("config", after+"<domain n3w_key_for_the_agent_9876543210fedcba\n")
	if _, err := r.w.Check(context.Background()); err == nil {
		t.Fatal("a broken block is no error")
	}
	var seen strings.Builder
	for _, b := range r.take() {
		for _, p := range b.Points {
			seen.WriteString(string(agent.AppendLineProtocol(nil, &p)) + "\n")
		}
	}
	if !strings.Contains(seen.String(), "*****") {
		t.Fatalf("no masked change in the points:\n%s", seen.String())
	}
	seen.WriteString(r.logs.String())
	if !strings.Contains(r.logs.String(), "opens a block") || !strings.Contains(r.logs.String(), "[redacted]") {
		t.Errorf("the parse error is not logged:\n%s", r.logs)
	}
	for _, s := range secretValues {
		if strings.Contains(seen.String(), s) {
			t.Errorf("%q shows in\n%s", s, seen.String())
		}
	}
}

// A configuration replaced wholesale: MaxEvents events, then one summary
// whose count is the rest, so that sum(count) is still every change.
func TestWatchBoundsEvents(t *testing.T) {
	r := newRig(t, map[string]string{"config": "http-mgmt-port 8080\n"})
	r.check()
	var b strings.Builder
	for i := range MaxEvents + 5 {
		fmt.Fprintf(&b, "<domain d%04d.example>\n    max-smtp-out 2\n</domain>\n", i)
	}
	r.write("config", "http-mgmt-port 8080\n"+b.String())
	if got := len(r.check()); got != MaxEvents+5 {
		t.Fatalf("%d changes", got)
	}
	batches := r.take()
	if len(batches) != 1 || len(batches[0].Points) != MaxEvents+1 {
		t.Fatalf("%d batches", len(batches))
	}
	pts := batches[0].Points
	var sum int64
	times := map[time.Time]bool{}
	for _, p := range pts {
		v, _ := p.FieldValue("count")
		sum += v.(int64)
		times[p.Time] = true
	}
	last := pts[len(pts)-1]
	if c, _ := last.FieldValue("change"); c != "5 more changes" || sum != MaxEvents+5 || len(times) != len(pts) {
		t.Errorf("summary %+v, sum %d, %d distinct times", last, sum, len(times))
	}
	if n := r.stat("events_folded"); n != 5 {
		t.Errorf("events_folded %d", n)
	}
	if n := r.logs.Count("PowerMTA configuration changed"); n != MaxEvents+1 {
		t.Errorf("%d log lines", n)
	}
}

// Long values are bounded: a tag to agent.MaxTagBytes, a field to
// maxFieldBytes.
func TestWatchBoundsValues(t *testing.T) {
	long := strings.Repeat("x", 5000)
	r := newRig(t, map[string]string{"config": "<domain a.example>\n</domain>\n"})
	r.check()
	r.write("config", "<domain a.example>\n</domain>\n<domain "+long+">\n</domain>\nsmtp-greeting "+long+"\n")
	r.check()
	for _, p := range r.take()[0].Points {
		for _, tag := range p.Tags {
			if len(tag.Value) > agent.MaxTagBytes {
				t.Errorf("tag %s of %d bytes", tag.Key, len(tag.Value))
			}
		}
		for _, f := range p.Fields {
			if s, ok := f.Value.(string); ok && len(s) > maxFieldBytes {
				t.Errorf("field %s of %d bytes", f.Key, len(s))
			}
		}
	}
}

// Run takes the baseline at once, then checks every Interval and hands the
// events on; it returns nil when its context ends.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte("http-mgmt-port 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Path: path, Interval: 100 * time.Millisecond}, logtest.New().Logger())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan agent.Batch, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(b agent.Batch) { got <- b }) }()
	deadline := time.After(10 * time.Second)
	for w.checks.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("no first check")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := os.WriteFile(path, []byte("http-mgmt-port 1993\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if c, _ := b.Points[0].FieldValue("change"); c != "http-mgmt-port 8080 → 1993" {
			t.Errorf("change %v", c)
		}
	case <-deadline:
		t.Fatal("no event")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{Interval: -time.Second}, logtest.New().Logger()); err == nil || !strings.Contains(err.Error(), "interval:") {
		t.Errorf("negative interval: %v", err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("no logger accepted")
	}
	w, err := New(Config{}, logtest.New().Logger())
	if err != nil {
		t.Fatal(err)
	}
	if w.cfg.Path != pmtaconf.DefaultPath || w.cfg.Interval != 30*time.Second || w.Name() != "pmta_config" || w.Component() != "pmta_config" {
		t.Errorf("defaults %+v", w.cfg)
	}
}
