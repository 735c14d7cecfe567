package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/pmta-agent/pmta-agent/agent/confwatch"
	"github.com/pmta-agent/pmta-agent/agent/impact"
	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

// impactFiles writes 2 h of accounting records before at and 2 h after, 20
// records every 10 s, with google deferring before and after as given,
// and returns the files.
func impactFiles(t *testing.T, at time.Time, before, after float64) []string {
	t.Helper()
	dir := t.TempDir()
	s := sim.New(sim.Options{Seed: 14, Rate: -1})
	w, err := s.NewAcctWriter(sim.AcctOptions{Dir: dir, Types: "d,b,t", LocalZone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeferralRate("google", before)
	for ts := at.Add(-2 * time.Hour); ts.Before(at.Add(2 * time.Hour)); ts = ts.Add(10 * time.Second) {
		if ts.Equal(at) {
			s.SetDeferralRate("google", after)
		}
		if err := w.Write(20, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files written: %v", err)
	}
	return files
}

type impactJSON struct {
	Change string `json:"change"`
	impact.Report
}

func runImpact(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(append([]string{"impact"}, args...), &out, &errOut); code != want {
		t.Fatalf("impact %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

func rowOf(t *testing.T, r impact.Report, kind, name string) impact.Row {
	t.Helper()
	for _, row := range r.Rows {
		if row.Kind == kind && row.Name == name {
			return row
		}
	}
	t.Fatalf("no row %s %s in %+v", kind, name, r.Rows)
	return impact.Row{}
}

// TestImpactBetter: google's deferrals halve at the change (20 % → 10 %):
// google is better, yahoo (untouched) shows no change, and the focus row
// for gmail.com is better too.
func TestImpactBetter(t *testing.T) {
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	files := impactFiles(t, at, 0.2, 0.1)
	out, _ := runImpact(t, 0, append([]string{"-at", at.Format(time.RFC3339), "-focus", "domain=gmail.com", "-format", "json"}, files...)...)
	var r impactJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	g := rowOf(t, r.Report, "isp", "google")
	if g.Outcome != impact.Better || g.Flag != "" || g.Before.Attempts < 1000 || g.After.Attempts < 1000 {
		t.Errorf("google: %+v", g)
	}
	if g.Deferrals.BeforePct < 17 || g.Deferrals.BeforePct > 23 || g.Deferrals.AfterPct < 8 || g.Deferrals.AfterPct > 12 {
		t.Errorf("google's deferral rates %+v, want about 20 → 10", g.Deferrals)
	}
	// With a focus, only its rows carry the flag.
	if y := rowOf(t, r.Report, "isp", "yahoo"); y.Outcome != impact.NoChange || y.Flag != "" {
		t.Errorf("yahoo: %+v", y)
	}
	if d := rowOf(t, r.Report, "domain", "gmail.com"); !d.Focus || d.Outcome != impact.Better || d.Before.Attempts == 0 {
		t.Errorf("gmail.com: %+v", d)
	}
	var total int64
	for _, row := range r.Rows {
		if !row.Focus {
			total += row.Before.Attempts + row.After.Attempts
		}
	}
	if total != r.Records || total != 4*360*20 {
		t.Errorf("rows sum to %d attempts, %d records read, written %d", total, r.Records, 4*360*20)
	}

	// The table says the same ("2006-01-02 15:04" is local time: in
	// another zone than UTC it is another moment; only its shape is checked).
	table, _ := runImpact(t, 0, append([]string{"-at", at.Format("2006-01-02 15:04"), "-focus", "domain=gmail.com"}, files...)...)
	for _, s := range []string{"isp google", "touched by the change:", "domain gmail.com", "DEFERRED %", "z-test"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	t.Logf("\n%s", table)
}

// TestImpactNoChange: nothing changes at -at: google shows no change and
// the flag "expected effect absent" with its explanation.
func TestImpactNoChange(t *testing.T) {
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute).Add(17 * time.Second)
	files := impactFiles(t, at, 0.2, 0.2)
	out, _ := runImpact(t, 0, append([]string{"-at", at.Format(time.RFC3339)}, files...)...)
	if !strings.Contains(out, impact.Explanation) {
		t.Errorf("no explanation of the flag:\n%s", out)
	}
	var google string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "isp google ") {
			google = l
		}
	}
	if !strings.Contains(google, "no change") || !strings.Contains(google, impact.EffectAbsent) {
		t.Errorf("google's row: %q\n%s", google, out)
	}
}

// TestImpactLatestChange: without -at the latest change of the journal is
// compared, with what its block names as the focus; with no journal the
// exit status is 3; bad flags 2; an unreadable file 1.
func TestImpactLatestChange(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, "state_dir: "+dir+"/state\napi: {enabled: false}\nlisten: {enabled: false}\nsinks: {stdout: {enabled: true}}\n")
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	files := impactFiles(t, at, 0.2, 0.1)

	_, stderr := runImpact(t, 3, append([]string{"-config", cfgPath}, files...)...)
	if !strings.Contains(stderr, "no configuration change is known") {
		t.Errorf("stderr: %s", stderr)
	}

	j := confwatch.JournalPath(filepath.Join(dir, "state"))
	if err := os.MkdirAll(filepath.Dir(j), 0o700); err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(confwatch.Entry{Time: at, Block: "<domain gmail.com>", Directive: "max-msg-rate",
		Change: "<domain gmail.com> max-msg-rate 250/h → 500/h", File: "/etc/pmta/config", Line: 40})
	writeTestFile(t, j, string(line)+"\n")
	out, _ := runImpact(t, 0, append([]string{"-config", cfgPath, "-format", "json"}, files...)...)
	var r impactJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.At.Equal(at) || !strings.Contains(r.Change, "max-msg-rate") {
		t.Errorf("compared at %s for %q, want %s", r.At, r.Change, at)
	}
	if d := rowOf(t, r.Report, "domain", "gmail.com"); d.Outcome != impact.Better {
		t.Errorf("gmail.com: %+v", d)
	}

	runImpact(t, 2, "-at", "yesterday", files[0])
	runImpact(t, 2, "-at", at.Format(time.RFC3339), "-focus", "isp=google", files[0])
	runImpact(t, 1, "-at", at.Format(time.RFC3339), filepath.Join(dir, "missing.csv"))

	// The globs' files, none written to since the window began: said, not
	// a table of nothing.
	globbed := filepath.Join(dir, "globbed.yaml")
	writeTestFile(t, globbed, "state_dir: "+dir+"/state\napi: {enabled: false}\nlisten: {enabled: false}\n"+
		"acct: {globs: ["+filepath.Dir(files[0])+"/*.csv]}\nsinks: {stdout: {enabled: true}}\n")
	old := at.Add(-48 * time.Hour)
	for _, f := range files {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, stderr := runImpact(t, 1, "-config", globbed, "-at", at.Format(time.RFC3339)); !strings.Contains(stderr, "was written to since") {
		t.Errorf("stderr: %s", stderr)
	}
}

// -at takes RFC 3339, PowerMTA's own timeLogged and a local time.
func TestImpactAtFormats(t *testing.T) {
	want := time.Date(2024, 1, 15, 15, 8, 20, 0, time.UTC)
	for _, s := range []string{"2024-01-15T15:08:20Z", "2024-01-15 10:08:20-0500"} {
		if got, err := parseAt(s); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if got, err := parseAt("2024-01-15 15:08"); err != nil || got.Location() != time.Local || got.Minute() != 8 {
		t.Errorf("local: %v %v", got, err)
	}
	if _, err := parseAt("yesterday"); err == nil {
		t.Error("parsed yesterday")
	}
	// The year 1 and the year 9999 are times like others: not "no -at".
	empty := filepath.Join(t.TempDir(), "acct-empty.csv")
	writeTestFile(t, empty, "")
	for _, at := range []string{"0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z"} {
		var out, errOut syncBuffer
		if code := run([]string{"impact", "-at", at, empty}, &out, &errOut); code != 0 {
			t.Errorf("-at %s: exit %d: %s", at, code, errOut.String())
		}
	}
}

// lpPoint is one decoded line of line protocol.
type lpPoint struct {
	measurement string
	tags        map[string]string
	fields      map[string]any // int64, float64, string or bool
	time        time.Time
}

// decodeLines decodes line protocol with the reference decoder.
func decodeLines(t *testing.T, b []byte) []lpPoint {
	t.Helper()
	var out []lpPoint
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			t.Fatal(err)
		}
		p := lpPoint{measurement: string(m), tags: map[string]string{}, fields: map[string]any{}}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			p.tags[string(k)] = string(v)
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			switch v.Kind() {
			case lineprotocol.Int:
				p.fields[string(k)] = v.IntV()
			case lineprotocol.Float:
				p.fields[string(k)] = v.FloatV()
			case lineprotocol.String:
				p.fields[string(k)] = v.StringV()
			case lineprotocol.Bool:
				p.fields[string(k)] = v.BoolV()
			default:
				t.Fatalf("field %s of kind %v", k, v.Kind())
			}
		}
		if p.time, err = dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// findPoint returns the pmta_impact point with the tags kind and name.
func findPoint(t *testing.T, pts []lpPoint, kind, name string) lpPoint {
	t.Helper()
	for _, p := range pts {
		if p.measurement == impact.Measurement && p.tags["kind"] == kind && p.tags["name"] == name {
			return p
		}
	}
	t.Fatalf("no pmta_impact point kind=%s name=%s in %+v", kind, name, pts)
	return lpPoint{}
}

// -format lines: the report's rows as pmta_impact points in line
// protocol, with the server and static tags of the configuration, at the
// change's time — what -send and the running agent write.
func TestImpactFormatLines(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeTestFile(t, cfgPath, "server: mta-lines\ntags: {dc: fra1}\nstate_dir: "+dir+"/state\napi: {enabled: false}\nlisten: {enabled: false}\nsinks: {stdout: {enabled: true}}\n")
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	files := impactFiles(t, at, 0.2, 0.1)
	out, _ := runImpact(t, 0, append([]string{"-config", cfgPath, "-at", at.Format(time.RFC3339), "-focus", "domain=gmail.com", "-format", "lines"}, files...)...)
	pts := decodeLines(t, []byte(out))
	if len(pts) < 3 {
		t.Fatalf("%d points:\n%s", len(pts), out)
	}
	for _, p := range pts {
		if p.measurement != "pmta_impact" || !p.time.Equal(at) || p.tags["server"] != "mta-lines" || p.tags["dc"] != "fra1" {
			t.Errorf("point %+v: want pmta_impact at %s, server mta-lines, dc fra1", p, at)
		}
		if len(p.fields) != 11 || p.fields["window_s"] != int64(7200) {
			t.Errorf("fields %v", p.fields)
		}
		for _, k := range []string{"before_attempts", "after_attempts", "verdict", "effect_absent", "window_s"} {
			if _, ok := p.fields[k].(int64); !ok {
				t.Errorf("%s = %v, want an integer", k, p.fields[k])
			}
		}
		for _, k := range []string{"before_deferral_pct", "after_deferral_pct", "before_bounce_pct", "after_bounce_pct", "deferral_z", "bounce_z"} {
			if _, ok := p.fields[k].(float64); !ok {
				t.Errorf("%s = %v, want a float", k, p.fields[k])
			}
		}
	}
	g := findPoint(t, pts, "isp", "google")
	if g.tags["touched"] != "no" || g.fields["verdict"] != impact.CodeBetter || g.fields["effect_absent"] != int64(0) ||
		g.fields["before_attempts"].(int64) < 1000 || g.fields["deferral_z"].(float64) > -impact.ZCritical {
		t.Errorf("google: %+v", g)
	}
	if pct := g.fields["before_deferral_pct"].(float64); pct < 17 || pct > 23 {
		t.Errorf("google's deferral rate before: %v, want about 20", pct)
	}
	if y := findPoint(t, pts, "isp", "yahoo"); y.fields["verdict"] != impact.CodeNoChange || y.fields["effect_absent"] != int64(0) {
		t.Errorf("yahoo: %+v", y)
	}
	if d := findPoint(t, pts, "domain", "gmail.com"); d.tags["touched"] != "yes" || d.fields["verdict"] != impact.CodeBetter {
		t.Errorf("gmail.com: %+v", d)
	}
}

// A focus on a value that the records' side made safe — 64 KB long (kept
// as its start and a hash of the whole), invalid UTF-8, mixed case — finds
// the records, and every pmta_impact tag is safe.
func TestImpactHostileFocus(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "acct-2024-01-15-0000.csv")
	long, bad := strings.Repeat("P", 65536), "Pool\xffY"
	var b strings.Builder
	b.WriteString("type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool\r\n")
	start := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for s := range 600 {
		ts := start.Add(time.Duration(s) * time.Second).Format("2006-01-02 15:04:05-0700")
		for _, pool := range []string{long, bad, `trail\`} {
			fmt.Fprintf(&b, "d,%s,%s,a@b,u@yahoo.com,,relayed,2.0.0,ok,mx,,smtp,,smtp,203.0.113.1,1.2.3.4,,10,vmta-1,,,q,\"%s\"\r\n", ts, ts, pool)
		}
	}
	writeTestFile(t, f, b.String())
	out, _ := runImpact(t, 0, "-at", "2024-01-15T10:05:00Z", "-window", "5m", "-format", "lines",
		"-focus", "pool="+long, "-focus", "pool="+bad, "-focus", `pool=trail\`, f)
	found := 0
	eachPointIn(t, []byte(out), func(m string, tags map[string]string, fields map[string]int64) {
		for k, v := range tags {
			if len(v) > 300 || strings.HasSuffix(v, `\`) || !utf8.ValidString(v) {
				t.Errorf("unsafe tag %s=%.40q", k, v)
			}
		}
		if tags["kind"] == "pool" {
			found++
			if fields["before_attempts"] != 300 || fields["after_attempts"] != 300 {
				t.Errorf("pool %.40q: %v, want 300 attempts each side", tags["name"], fields)
			}
		}
	})
	if found != 3 {
		t.Errorf("%d pool rows, want 3", found)
	}
}
