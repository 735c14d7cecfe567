package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// acctRows reads a file back with encoding/csv, checking the header, CRLF
// line ends and the column count.
func acctRows(t *testing.T, path string, wantHeader []string) []map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(strings.Join(wantHeader, ",")+"\r\n")) {
		t.Fatalf("%s: header is not %d columns + CRLF: %.120q", path, len(wantHeader), raw)
	}
	if bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) || !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("%s: a line does not end in CRLF", path)
	}
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = len(wantHeader)
	r.ReuseRecord = false
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

// keyOf rebuilds an AcctKey from a parsed record.
func keyOf(m map[string]string) AcctKey {
	dom := m["rcpt"]
	if i := strings.LastIndexByte(dom, '@'); i >= 0 {
		dom = dom[i+1:]
	}
	if m["type"] == "tq" {
		dom, _, _ = strings.Cut(m["queue"], "/")
	}
	return AcctKey{Type: m["type"], Domain: dom, VMTA: m["vmta"]}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestAcctRecordsMatchCountsAndModel(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	if err := w.Write(5000, testNow); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	after := s.Snapshot()
	if got := listDir(t, dir); !slices.Equal(got, []string{"acct-2024-01-15-0000.csv"}) {
		t.Fatalf("files %v", got)
	}
	rows := acctRows(t, filepath.Join(dir, "acct-2024-01-15-0000.csv"), header33)
	if len(rows) != 5000 {
		t.Fatalf("%d records", len(rows))
	}
	parsed := map[AcctKey]int64{}
	byType := map[string]int64{}
	for _, m := range rows {
		parsed[keyOf(m)]++
		byType[m["type"]]++
	}
	counts := w.Counts()
	if len(parsed) != len(counts) {
		t.Errorf("%d keys in the file, %d in Counts", len(parsed), len(counts))
	}
	for k, v := range counts {
		if parsed[k] != v {
			t.Errorf("%+v: file %d, Counts %d", k, parsed[k], v)
		}
	}
	for _, typ := range allAcctTypes {
		if byType[typ] == 0 {
			t.Errorf("no %s records in 5000", typ)
		}
	}
	if f := float64(byType["d"]) / 5000; f < 0.7 || f > 0.85 {
		t.Errorf("d share %.2f", f)
	}

	// What was written moved the model's counters by exactly as much.
	delta := func(get func(Snapshot) int64) int64 { return get(after) - get(before) }
	tot := func(f func(TrafficCounters) int64) func(Snapshot) int64 {
		return func(s Snapshot) int64 { return f(s.Status.Traffic.Total) }
	}
	checks := map[string][2]int64{
		"out.rcp":         {delta(tot(func(c TrafficCounters) int64 { return c.Out.Rcp })), byType["d"]},
		"in.rcp":          {delta(tot(func(c TrafficCounters) int64 { return c.In.Rcp })), byType["r"]},
		"bounceProcessed": {delta(tot(func(c TrafficCounters) int64 { return c.BounceProcessed })), byType["rb"] + byType["rs"]},
		"feedbackLoop":    {delta(tot(func(c TrafficCounters) int64 { return c.FeedbackLoopProcessed })), byType["f"]},
		"lastMin.out.rcp": {after.Status.Traffic.LastMin.Out.Rcp - before.Status.Traffic.LastMin.Out.Rcp, byType["d"]},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s moved by %d, %d records written", name, c[0], c[1])
		}
	}
	perDomain := map[string][3]int64{}
	for k, v := range counts {
		x := perDomain[k.Domain]
		switch k.Type {
		case "d":
			x[0] += v
		case "t":
			x[1] += v
		case "b":
			x[2] += v
		}
		perDomain[k.Domain] = x
	}
	for i, d := range after.Domains {
		var b Domain
		for _, bd := range before.Domains {
			if bd.Name == d.Name {
				b = bd
			}
		}
		want := perDomain[d.Name]
		if got := [3]int64{d.Delivered - b.Delivered, d.Deferred - b.Deferred, d.Bounced - b.Bounced}; got != want {
			t.Errorf("domain %d %s: delivered/deferred/bounced moved by %v, records %v", i, d.Name, got, want)
		}
	}
}

func TestAcctRecordShapes(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(4000, testNow); err != nil {
		t.Fatal(err)
	}
	w.Close()
	snap := s.Snapshot()
	ipOf, poolOf := map[string]string{}, map[string]string{}
	for _, v := range snap.VMTAs {
		ipOf[v.Name], poolOf[v.Name] = v.SourceIP, v.Pool
	}
	cats := map[string]bool{"bad-configuration": true, "bad-connection": true, "bad-domain": true, "bad-mailbox": true,
		"content-related": true, "inactive-mailbox": true, "invalid-sender": true, "message-expired": true,
		"no-answer-from-host": true, "other": true, "policy-related": true, "protocol-errors": true, "quota-issues": true,
		"relaying-issues": true, "routing-errors": true, "spam-related": true, "virus-related": true}
	mask := regexp.MustCompile(`[0-9A-Za-z]*[0-9][0-9A-Za-z]*`)
	gmailDiags := map[string]bool{}
	multiline := false
	for _, m := range keyRows(t, filepath.Join(dir, "acct-2024-01-15-0000.csv")) {
		typ := m["type"]
		logged, err := time.Parse(acctTimeLayout, m["timeLogged"])
		if err != nil || !logged.Equal(testNow) {
			t.Fatalf("%s timeLogged %q", typ, m["timeLogged"])
		}
		if q := m["timeQueued"]; q != "" {
			if tq, err := time.Parse(acctTimeLayout, q); err != nil || tq.After(logged) {
				t.Errorf("%s timeQueued %q after timeLogged", typ, q)
			}
		}
		switch typ {
		case "d", "b", "t", "tq":
			if m["dlvSourceIp"] != ipOf[m["vmta"]] || m["vmtaPool"] != poolOf[m["vmta"]] || !strings.HasSuffix(m["queue"], "/"+m["vmta"]) {
				t.Errorf("%s: ip %s pool %s queue %s for %s", typ, m["dlvSourceIp"], m["vmtaPool"], m["queue"], m["vmta"])
			}
		}
		switch typ {
		case "d":
			if m["dsnAction"] != "relayed" || m["bounceCat"] != "success" || m["dsnStatus"] != "2.0.0 (success)" || !strings.HasPrefix(m["dsnDiag"], "smtp;250 ") {
				t.Errorf("d record %v", m)
			}
			if strings.HasSuffix(m["rcpt"], "@gmail.com") {
				gmailDiags[mask.ReplaceAllString(m["dsnDiag"], "#")] = true
			}
		case "b":
			if m["dsnAction"] != "failed" || !cats[m["bounceCat"]] || m["dsnStatus"] == "" {
				t.Errorf("b record %v", m)
			}
			multiline = multiline || strings.Contains(m["dsnDiag"], "\n")
		case "t":
			if m["dsnAction"] != "delayed" || !cats[m["bounceCat"]] || m["rcpt"] == "" {
				t.Errorf("t record %v", m)
			}
		case "tq":
			if m["rcpt"] != "" || m["orig"] != "" || m["dsnDiag"] == "" || m["queue"] == "" {
				t.Errorf("tq record %v", m)
			}
		case "f":
			if m["feedbackType"] != "abuse" || m["format"] != "arf" || m["repSourceIp"] != ipOf[m["vmta"]] {
				t.Errorf("f record %v", m)
			}
		case "rb", "rs":
			if m["vmta"] != "" || m["dsnReportingMta"] == "" || m["queue"] != "" {
				t.Errorf("%s record %v", typ, m)
			}
		case "r":
			if m["queue"] != "" || m["vmta"] == "" || m["dlvSize"] == "" {
				t.Errorf("r record %v", m)
			}
		}
	}
	if len(gmailDiags) != 1 {
		t.Errorf("gmail delivery replies should mask to one pattern, got %v", gmailDiags)
	}
	_ = multiline // rare by design; TestGenerateFile looks for it in a larger sample
}

// keyRows reads a 33-column file.
func keyRows(t *testing.T, path string) []map[string]string {
	t.Helper()
	return acctRows(t, path, header33)
}

func TestAcctRotateBySize(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	const max = 32 << 10
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, MaxSize: max, Types: "d,b", LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := w.Write(100, testNow.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	names := listDir(t, dir)
	if len(names) < 4 {
		t.Fatalf("only %v", names)
	}
	total := 0
	for i, n := range names {
		if want := "acct-2024-01-15-" + []string{"0000", "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010"}[i] + ".csv"; n != want {
			t.Errorf("file %d is %s, want %s", i, n, want)
		}
		rows := acctRows(t, filepath.Join(dir, n), header23)
		total += len(rows)
		fi, _ := os.Stat(filepath.Join(dir, n))
		if i < len(names)-1 && fi.Size() < max {
			t.Errorf("%s rotated at %d bytes, before %d", n, fi.Size(), max)
		}
		if fi.Size() > max+4096 {
			t.Errorf("%s grew to %d bytes", n, fi.Size())
		}
		for _, m := range rows {
			if m["type"] != "d" && m["type"] != "b" {
				t.Errorf("type %s with records d,b", m["type"])
			}
		}
	}
	if total != 500 {
		t.Errorf("%d records over all files", total)
	}
}

func TestAcctRotateAtMidnightAndMove(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir, moved := t.TempDir(), t.TempDir()
	// A file from an earlier run must not be overwritten.
	if err := os.WriteFile(filepath.Join(dir, "acct-2024-01-15-0000.csv"), []byte("old\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, MoveTo: moved, Types: "d,b,t", SplitDiag: true, LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	late := time.Date(2024, 1, 15, 23, 59, 59, 0, zone)
	if err := w.Write(300, late); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"acct-2024-01-15-0000.csv", "acct-2024-01-15-0001.csv", "diag-2024-01-15-0000.csv"}) {
		t.Fatalf("before midnight: %v", got)
	}
	// Midnight in the server's zone, given in UTC.
	if err := w.Write(300, late.Add(2*time.Second).UTC()); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, moved); !slices.Equal(got, []string{"acct-2024-01-15-0001.csv", "diag-2024-01-15-0000.csv"}) {
		t.Errorf("moved at midnight: %v", got)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(10, late.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"acct-2024-01-15-0000.csv"}) {
		t.Errorf("left in dir: %v", got)
	}
	got := listDir(t, moved)
	want := []string{"acct-2024-01-15-0001.csv", "acct-2024-01-16-0000.csv", "acct-2024-01-16-0001.csv",
		"diag-2024-01-15-0000.csv", "diag-2024-01-16-0000.csv", "diag-2024-01-16-0001.csv"}
	if !slices.Equal(got, want) {
		t.Errorf("moved: %v, want %v", got, want)
	}
	var n int64
	for _, name := range got {
		header := header23
		if strings.HasPrefix(name, "diag-") {
			header = header33
		}
		for _, m := range acctRows(t, filepath.Join(moved, name), header) {
			n++
			day := strings.Split(name, "-")[3]
			if !strings.HasPrefix(m["timeLogged"], "2024-01-"+day) {
				t.Errorf("%s holds a record of %s", name, m["timeLogged"])
			}
			if isDiag := strings.HasPrefix(name, "diag-"); isDiag != (m["type"] == "t") {
				t.Errorf("%s holds a %s record", name, m["type"])
			}
		}
	}
	var counted int64
	for _, v := range w.Counts() {
		counted += v
	}
	if n != 610 || counted != 610 {
		t.Errorf("%d records in files, %d counted, want 610", n, counted)
	}
	if old, _ := os.ReadFile(filepath.Join(dir, "acct-2024-01-15-0000.csv")); string(old) != "old\r\n" {
		t.Error("an existing file was overwritten")
	}
	if err := w.Write(1, late); err == nil {
		t.Error("Write after Close must fail")
	}
}

func TestAcctOptions(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	if _, err := s.NewAcctWriter(AcctOptions{}); err == nil {
		t.Error("no Dir accepted")
	}
	if _, err := s.NewAcctWriter(AcctOptions{Dir: t.TempDir(), Types: "d,x"}); err == nil {
		t.Error("unknown type accepted")
	}
}

func TestGenerateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acct-bench.csv")
	if err := GenerateFile(path, GenerateOptions{Records: 100000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = len(header33)
	r.ReuseRecord = true
	h, err := r.Read()
	if err != nil || !slices.Equal(h, header33) {
		t.Fatalf("header %v %v", h, err)
	}
	byType := map[string]int{}
	multiline := 0
	n := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		n++
		byType[rec[fType]]++
		if strings.Contains(rec[fDsnDiag], "\n") {
			multiline++
		}
	}
	if n != 100000 {
		t.Errorf("%d records", n)
	}
	for _, typ := range allAcctTypes {
		if byType[typ] == 0 {
			t.Errorf("no %s records", typ)
		}
	}
	if multiline == 0 {
		t.Error("no record with a line break inside a quoted field")
	}
	again := filepath.Join(t.TempDir(), "again.csv")
	if err := GenerateFile(again, GenerateOptions{Records: 1000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(again)
	if err := GenerateFile(again, GenerateOptions{Records: 1000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("GenerateFile is not reproducible")
	}
}

func BenchmarkGenerateFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.csv")
	for b.Loop() {
		if err := GenerateFile(path, GenerateOptions{Records: 10000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkSnapshot(b *testing.B) {
	c := newClock(testNow)
	s := New(Options{Clock: c.Now})
	s.Snapshot()
	for b.Loop() {
		c.Add(time.Second)
		s.Snapshot()
	}
}

// TestAcctDrivenModel: with Rate < 0 only written records move the counters,
// so the API and the files agree exactly.
func TestAcctDrivenModel(t *testing.T) {
	s, c, srv := newTestSim(t, Options{Rate: -1})
	c.Add(time.Hour)
	if tot := s.Snapshot().Status.Traffic.Total; tot.Out.Rcp != 0 || tot.In.Rcp != 0 {
		t.Fatalf("model traffic with Rate < 0: %+v", tot)
	}
	w, err := s.NewAcctWriter(AcctOptions{Dir: t.TempDir(), Types: "d,b,t", LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(600, c.Now()); err != nil {
		t.Fatal(err)
	}
	var d int64
	for k, v := range w.Counts() {
		if k.Type == "d" {
			d += v
		}
	}
	var seed seedStatusJSON
	if err := json.Unmarshal(getOK(t, srv, "/status.json"), &seed); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if snap.Status.Traffic.Total.Out.Rcp != d || snap.Status.Traffic.LastMin.Out.Rcp != d || seed.MsgsPerSec != round3(float64(d)/60) {
		t.Errorf("d records %d; total out %d, lastMin %d, msgs/s %v", d, snap.Status.Traffic.Total.Out.Rcp, snap.Status.Traffic.LastMin.Out.Rcp, seed.MsgsPerSec)
	}
	c.Add(2 * time.Minute)
	if lm := s.Snapshot().Status.Traffic.LastMin.Out.Rcp; lm != 0 {
		t.Errorf("lastMin %d two minutes later", lm)
	}
}
