package sim

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// segRates is the deferral share of every queue in the running segment.
func segRates(s *Sim) []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seg.df)
}

func TestScenarioRates(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	model := segRates(s)

	desc, err := s.ApplyScenario("ip-reputation")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ip-reputation: 203.0.113.21 (vmta-yh-021, pool-yahoo) defers 40.0 % at yahoo; the pool's other 3 IPs stay at 3."; !strings.HasPrefix(desc, want) {
		t.Errorf("description %q, want it to start %q", desc, want)
	}
	desc, err = s.ApplyScenario(" Pool-Throttle ")
	if err != nil {
		t.Fatal(err)
	}
	if want := "pool-throttle: all 4 IPs of pool-microsoft (203.0.113.31, 203.0.113.32, 203.0.113.33, 203.0.113.34) defer 30.0 % at microsoft"; desc != want {
		t.Errorf("description %q, want %q", desc, want)
	}
	for q, want := range map[string]float64{
		"yahoo.com/vmta-yh-021": 0.4, "aol.com/vmta-yh-021": 0.4, "yahoo.com/vmta-yh-022": 0.032,
		"outlook.com/vmta-ms-031": 0.3, "hotmail.com/vmta-ms-034": 0.3, "gmail.com/vmta-gm-011": 0.014,
	} {
		if got := queueDF(t, s, q); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s defers %.3f, want %.3f", q, got, want)
		}
	}
	desc, err = s.ApplyScenario("clear")
	if err != nil {
		t.Fatal(err)
	}
	if desc != "clear: 1 per-IP and 1 per-pool deferral rates removed" {
		t.Errorf("description %q", desc)
	}
	if !slices.Equal(segRates(s), model) {
		t.Error("clear left a rate changed")
	}

	_, err = s.ApplyScenario("pool-party")
	if err == nil || !strings.Contains(err.Error(), "ip-reputation, pool-throttle, config-fix, config-noop, clear") {
		t.Errorf("unknown name: %v", err)
	}
	for _, name := range []string{"config-fix", "config-noop"} {
		if _, err := s.ApplyScenario(name); err == nil || !strings.Contains(err.Error(), "no PowerMTA config written") {
			t.Errorf("%s without a config: %v", name, err)
		}
	}
	if !slices.Equal(segRates(s), model) {
		t.Error("a failed scenario changed a rate")
	}

	small, _, _ := newTestSim(t, Options{VMTAs: 2})
	for _, name := range []string{"ip-reputation", "pool-throttle"} {
		if _, err := small.ApplyScenario(name); err == nil {
			t.Errorf("%s on a model without the pool", name)
		}
	}
}

// oneChange diffs two versions of the config and returns their one change.
func oneChange(t *testing.T, before, after *pmtaconf.Block) pmtaconf.Change {
	t.Helper()
	changes := pmtaconf.Diff(before, after)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1: %v", len(changes), changes)
	}
	return changes[0]
}

// googleAttempts writes n records in the model's current mix and counts
// google's attempts and deferrals.
func googleAttempts(t *testing.T, s *Sim, n int, at time.Time) attempts {
	t.Helper()
	dir := t.TempDir()
	w, err := s.NewAcctWriter(AcctOptions{Dir: dir, LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(n, at); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var sum attempts
	for k, a := range countAttempts(t, s, dir) {
		if k[1] == "google" {
			sum.n, sum.t = sum.n+a.n, sum.t+a.t
		}
	}
	return sum
}

func TestScenarioConfigFix(t *testing.T) {
	s, _, _ := newTestSim(t, Options{Seed: 1})
	path := filepath.Join(t.TempDir(), "config")
	if err := s.WriteConfig(path, ConfigOptions{GoogleDeferral: TightGoogleDeferral}); err != nil {
		t.Fatal(err)
	}
	if got := queueDF(t, s, "gmail.com/vmta-gm-012"); got != TightGoogleDeferral {
		t.Fatalf("google defers %.3f under the written config", got)
	}
	for _, name := range []string{"ip-reputation", "pool-throttle"} {
		if _, err := s.ApplyScenario(name); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := loadConfig(t, path)
	// Two minutes at 200 records/s on each side, as in the demo.
	recBefore := googleAttempts(t, s, 24000, testNow)

	desc, err := s.ApplyScenario("config-fix")
	if err != nil {
		t.Fatal(err)
	}
	if want := "config-fix: <domain $gmail> max-msg-rate 6000/h → 12000/h in " + path + "; google defers 8.0 % → 4.0 %"; desc != want {
		t.Errorf("description\n got %q\nwant %q", desc, want)
	}
	after, _ := loadConfig(t, path)
	c := oneChange(t, before, after)
	if c.Op != pmtaconf.Modified || c.Block != "<domain $gmail>" || c.Directive != "max-msg-rate" || c.Old != "6000/h" || c.New != "12000/h" {
		t.Errorf("change %+v", c)
	}
	for q, want := range map[string]float64{"gmail.com/vmta-gm-011": 0.04, "googlemail.com/vmta-gm-014": 0.04, "yahoo.com/vmta-yh-021": 0.4} {
		if got := queueDF(t, s, q); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s defers %.3f after config-fix, want %.3f", q, got, want)
		}
	}

	// The impact test's verdict on the records: the pooled two-proportion z
	// of google's deferral share, after against before, is well past -2.58.
	recAfter := googleAttempts(t, s, 24000, testNow.Add(2*time.Minute))
	p := float64(recBefore.t+recAfter.t) / float64(recBefore.n+recAfter.n)
	z := (recAfter.frac() - recBefore.frac()) / math.Sqrt(p*(1-p)*(1/float64(recBefore.n)+1/float64(recAfter.n)))
	t.Logf("google before %d/%d (%.2f %%), after %d/%d (%.2f %%), z = %.1f",
		recBefore.t, recBefore.n, 100*recBefore.frac(), recAfter.t, recAfter.n, 100*recAfter.frac(), z)
	if recBefore.n < 4500 || recAfter.n < 4500 || z > -5 {
		t.Errorf("google's halving is not plain in the records: z = %.2f", z)
	}

	// A second fix doubles again from where the file is.
	if desc, err := s.ApplyScenario("config-fix"); err != nil || !strings.Contains(desc, "12000/h → 24000/h") {
		t.Errorf("second config-fix: %q %v", desc, err)
	}
	desc, err = s.ApplyScenario("clear")
	if err != nil || desc != "clear: 1 per-IP and 1 per-pool deferral rates removed, google back to the model's rate" {
		t.Errorf("clear: %q %v", desc, err)
	}
	if got := queueDF(t, s, "gmail.com/vmta-gm-011"); got != 0.014 {
		t.Errorf("google defers %.3f after clear", got)
	}
}

func TestScenarioConfigNoop(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	path := filepath.Join(t.TempDir(), "config")
	if err := s.WriteConfig(path, ConfigOptions{}); err != nil {
		t.Fatal(err)
	}
	rates := segRates(s)
	before, _ := loadConfig(t, path)
	desc, err := s.ApplyScenario("config-noop")
	if err != nil {
		t.Fatal(err)
	}
	if want := "config-noop: <domain $yahoo> max-smtp-out 10 → 12 in " + path + "; no rate changes"; desc != want {
		t.Errorf("description %q", desc)
	}
	after, _ := loadConfig(t, path)
	c := oneChange(t, before, after)
	if c.Op != pmtaconf.Modified || c.Block != "<domain $yahoo>" || c.Directive != "max-smtp-out" || c.Old != "10" || c.New != "12" {
		t.Errorf("change %+v", c)
	}
	if !slices.Equal(segRates(s), rates) {
		t.Error("config-noop changed a rate")
	}
	// Without GoogleDeferral, config-fix halves the model's own rate.
	if _, err := s.ApplyScenario("config-fix"); err != nil {
		t.Fatal(err)
	}
	if got := queueDF(t, s, "gmail.com/vmta-gm-011"); math.Abs(got-0.007) > 1e-9 {
		t.Errorf("google defers %.4f after config-fix, want 0.007", got)
	}
	final, _ := loadConfig(t, path)
	if c := oneChange(t, after, final); c.Directive != "max-msg-rate" {
		t.Errorf("config-fix after config-noop: %+v", c)
	}

	small, _, _ := newTestSim(t, Options{Domains: 1})
	if err := small.WriteConfig(filepath.Join(t.TempDir(), "config"), ConfigOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := small.ApplyScenario("config-noop"); err == nil || !strings.Contains(err.Error(), "no yahoo domains") {
		t.Errorf("config-noop without yahoo: %v", err)
	}
}

// TestScenariosConcurrent runs scenarios against readers and an accounting
// writer, for the race detector.
func TestScenariosConcurrent(t *testing.T) {
	s, c, srv := newTestSim(t, Options{})
	if err := s.WriteConfig(filepath.Join(t.TempDir(), "config"), ConfigOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewAcctWriter(AcctOptions{Dir: t.TempDir(), LocalZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var wg sync.WaitGroup
	for _, name := range ScenarioNames() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := s.ApplyScenario(name); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 5 {
			c.Add(time.Second)
			if err := w.Write(200, c.Now()); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 5 {
			resp, err := srv.Client().Get(srv.URL + "/queues?format=json")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}
	}()
	wg.Wait()
}
