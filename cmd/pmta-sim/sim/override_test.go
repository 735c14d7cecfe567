package sim

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// attempts counts d, t and b records per (source IP, ISP of the recipient's
// domain) in every file of dir.
type attempts struct{ n, t int64 }

func (a attempts) frac() float64 { return float64(a.t) / float64(a.n) }

func countAttempts(t *testing.T, s *Sim, dir string) map[[2]string]attempts {
	t.Helper()
	isp := map[string]string{}
	for _, d := range s.domains {
		isp[d.name] = d.isp
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in %s: %v", dir, err)
	}
	out := map[[2]string]attempts{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := csv.NewReader(f)
		r.ReuseRecord = true
		header, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		col := map[string]int{}
		for i, h := range header {
			col[h] = i
		}
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			typ := rec[col["type"]]
			if typ != "d" && typ != "t" && typ != "b" {
				continue
			}
			rcpt := rec[col["rcpt"]]
			dom := rcpt[strings.LastIndexByte(rcpt, '@')+1:]
			k := [2]string{rec[col["dlvSourceIp"]], isp[dom]}
			a := out[k]
			a.n++
			if typ == "t" {
				a.t++
			}
			out[k] = a
		}
		f.Close()
	}
	return out
}

// within checks a measured share against the expected one, allowing 4.5
// standard errors of a proportion over n attempts (a false alarm about once
// in 150,000 runs; the seeds are fixed anyway, so a run is reproducible).
func within(t *testing.T, what string, a attempts, want float64) {
	t.Helper()
	if a.n < 1000 {
		t.Fatalf("%s: only %d attempts", what, a.n)
	}
	tol := 4.5 * math.Sqrt(want*(1-want)/float64(a.n))
	if got := a.frac(); math.Abs(got-want) > tol {
		t.Errorf("%s: deferred %.4f of %d attempts, want %.4f ± %.4f", what, got, a.n, want, tol)
	}
}

// ipsOf returns the source IPs of pool p.
func ipsOf(s *Sim, p int) []string {
	var out []string
	for _, vi := range s.poolVMTAs(p) {
		out = append(out, s.vmtas[vi].ip)
	}
	return out
}

func TestIPAndPoolDeferralInRecords(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	dir := t.TempDir()
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, Types: "d,b,t", LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	s.SetIPDeferralRate("Yahoo", "vmta-yh-021", 0.4) // by vmta name, any case
	s.SetPoolDeferralRate("microsoft", "pool-microsoft", 0.3)
	for i := 0; i < 12; i++ {
		if err := w.Write(10000, testNow.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := countAttempts(t, s, dir)

	yahoo := ipsOf(s, poolYahoo)
	if yahoo[0] != "203.0.113.21" {
		t.Fatalf("pool-yahoo's first IP is %s", yahoo[0])
	}
	within(t, "203.0.113.21 at yahoo", got[[2]string{yahoo[0], "yahoo"}], 0.4)
	s.mu.Lock()
	rest := s.rateAt("yahoo", func(vi int) bool { return s.vmtas[vi].ip != yahoo[0] })
	s.mu.Unlock()
	if rest < 0.02 || rest > 0.05 {
		t.Errorf("the other yahoo IPs' model rate is %.4f, want the model's ≈3.5 %%", rest)
	}
	for _, ip := range yahoo[1:] {
		within(t, ip+" at yahoo", got[[2]string{ip, "yahoo"}], rest)
	}
	for _, ip := range ipsOf(s, poolMicrosoft) {
		within(t, ip+" at microsoft", got[[2]string{ip, "microsoft"}], 0.3)
	}
	for _, ip := range ipsOf(s, poolGmail) {
		within(t, ip+" at google", got[[2]string{ip, "google"}], 0.014)
	}
}

func TestIPDeferralInModel(t *testing.T) {
	s, c, _ := newTestSim(t, Options{Rate: 200})
	const vm = "vmta-yh-021"
	counters := func() (dlv, def, bnc int64, backoff int) {
		for _, q := range s.Snapshot().Queues {
			if q.VMTA == vm {
				dlv, def, bnc = dlv+q.Delivered, def+q.Deferred, bnc+q.Bounced
				if q.Backoff {
					backoff++
				}
			}
		}
		return
	}
	backoffBefore := 0
	for i := 0; i < 6; i++ {
		_, _, _, b := counters()
		backoffBefore += b
		c.Add(episode * time.Second)
	}
	s.SetIPDeferralRate("yahoo", "203.0.113.21", 0.4)
	d0, f0, b0, _ := counters()
	backoffAfter := 0
	for i := 0; i < 6; i++ {
		c.Add(episode * time.Second)
		_, _, _, b := counters()
		backoffAfter += b
	}
	d1, f1, b1, _ := counters()
	if frac := float64(f1-f0) / float64((d1-d0)+(f1-f0)+(b1-b0)); frac < 0.39 || frac > 0.41 {
		t.Errorf("%s's deferral share in the API's counters %.3f, want 0.4", vm, frac)
	}
	if backoffAfter <= backoffBefore {
		t.Errorf("%s's queues in backoff: %d before, %d after", vm, backoffBefore, backoffAfter)
	}
}

// queueDF is the deferral share of the running segment for domain/vmta.
func queueDF(t *testing.T, s *Sim, name string) float64 {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.queues {
		if s.queues[i].name == name {
			return s.seg.df[i]
		}
	}
	t.Fatalf("no queue %s", name)
	return 0
}

func TestDeferralPrecedence(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	const (
		y21  = "yahoo.com/vmta-yh-021"
		y22  = "yahoo.com/vmta-yh-022"
		aol  = "aol.com/vmta-yh-021"
		gm11 = "gmail.com/vmta-gm-011"
	)
	check := func(step string, want map[string]float64) {
		t.Helper()
		for q, w := range want {
			if got := queueDF(t, s, q); math.Abs(got-w) > 1e-9 {
				t.Errorf("%s: %s defers %.4f, want %.4f", step, q, got, w)
			}
		}
	}
	model := map[string]float64{y21: 0.032, y22: 0.032, aol: 0.042, gm11: 0.014}
	check("model", model)

	s.SetDeferralRate("yahoo", 0.1)
	s.SetPoolDeferralRate("yahoo", "pool-yahoo", 0.2)
	s.SetIPDeferralRate("yahoo", "203.0.113.21", 0.4)
	check("isp, pool and ip", map[string]float64{y21: 0.4, y22: 0.2, aol: 0.4, gm11: 0.014})

	// At one level a domain beats its ISP; a lower level still loses.
	s.SetIPDeferralRate("aol.com", "vmta-yh-021", 0.5)
	s.SetDeferralRate("yahoo.com", 0.05)
	check("domain", map[string]float64{y21: 0.4, y22: 0.2, aol: 0.5})

	// Restoring, by IP or by vmta name alike, uncovers the next level.
	s.SetIPDeferralRate("aol.com", "203.0.113.21", -1)
	s.SetIPDeferralRate("yahoo", "vmta-yh-021", -1)
	check("ip restored", map[string]float64{y21: 0.2, y22: 0.2, aol: 0.2})
	s.SetPoolDeferralRate("yahoo", "pool-yahoo", -1)
	check("pool restored", map[string]float64{y21: 0.05, y22: 0.05, aol: 0.1})
	s.SetDeferralRate("yahoo.com", -1)
	s.SetDeferralRate("yahoo", -1)
	check("all restored", model)

	// Above 95 % is capped, with the bounces fitting under it.
	s.SetIPDeferralRate("google", "203.0.113.11", 2)
	if got := queueDF(t, s, gm11); got > 0.95 || got < 0.9 {
		t.Errorf("capped rate %.3f", got)
	}
	// Names that match nothing change nothing.
	s.SetIPDeferralRate("google", "198.51.100.1", 0.5)
	s.SetPoolDeferralRate("google", "pool-nonesuch", 0.5)
	s.SetIPDeferralRate("google", "203.0.113.11", -1)
	check("unknown names", model)
}

func TestPoolDeferralOnlyAtThatISP(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	s.SetPoolDeferralRate("microsoft", "pool-microsoft", 0.3)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.queues {
		q := &s.queues[i]
		d, v := &s.domains[q.di], &s.vmtas[q.vi]
		want := d.df
		if d.isp == "microsoft" && v.pool == poolMicrosoft {
			want = 0.3
		}
		if got := s.seg.df[i]; got != want {
			t.Errorf("%s defers %.3f, want %.3f", q.name, got, want)
		}
	}
	if !slices.Contains(ipsOf(s, poolMicrosoft), "203.0.113.31") {
		t.Errorf("pool-microsoft: %v", ipsOf(s, poolMicrosoft))
	}
}
