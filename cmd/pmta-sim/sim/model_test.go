package sim

import (
	"log/slog"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"
)

// withoutTops drops the high-water marks of connections, which record how
// often the model was looked at.
func withoutTops(s Snapshot) Snapshot {
	s.Status.Conn.SMTPIn.Top, s.Status.Conn.SMTPOut.Top = 0, 0
	return s
}

func TestDeterministic(t *testing.T) {
	c1, c2 := newClock(testNow), newClock(testNow)
	a := New(Options{Seed: 3, Clock: c1.Now})
	b := New(Options{Seed: 3, Clock: c2.Now})
	// a jumps, b is read every second: the model must not care.
	for i := 0; i < 90; i++ {
		c2.Add(time.Second)
		b.Snapshot()
	}
	c1.Add(90 * time.Second)
	sa, sb := withoutTops(a.Snapshot()), withoutTops(b.Snapshot())
	if !reflect.DeepEqual(sa, sb) {
		t.Fatalf("same seed and time, different models:\n%+v\n%+v", sa.Status.Traffic.Total, sb.Status.Traffic.Total)
	}
	if again := withoutTops(a.Snapshot()); !reflect.DeepEqual(sa, again) {
		t.Fatal("a frozen clock must give a stable snapshot")
	}
	other := New(Options{Seed: 4, Clock: c1.Now}).Snapshot()
	if other.Status.Traffic.Total.Out.Rcp == sa.Status.Traffic.Total.Out.Rcp {
		t.Error("another seed should give other numbers")
	}
}

func TestRateAndWindows(t *testing.T) {
	c := newClock(testNow)
	s := New(Options{Seed: 1, Rate: 200, Clock: c.Now})
	before := s.Snapshot().Status
	if up := before.TimeNow.Sub(before.StartupTime); up != 72*time.Hour {
		t.Errorf("default uptime %v", up)
	}
	c.Add(10 * time.Minute)
	after := s.Snapshot().Status
	got := float64(after.Traffic.Total.Out.Rcp-before.Traffic.Total.Out.Rcp) / 600
	if got < 200*0.85 || got > 200*1.15 {
		t.Errorf("delivered %.1f/s, want about 200", got)
	}
	tr := after.Traffic
	if tr.LastMin.Out.Rcp < 200*60*0.8 || tr.LastMin.Out.Rcp > 200*60*1.2 || tr.LastHr.Out.Rcp < 50*tr.LastMin.Out.Rcp {
		t.Errorf("windows: lastMin %d, lastHr %d", tr.LastMin.Out.Rcp, tr.LastHr.Out.Rcp)
	}
	if tr.TopPerMin.Out.Rcp < tr.LastMin.Out.Rcp || tr.TopPerHr.Out.Rcp < tr.LastHr.Out.Rcp || tr.Total.Out.Rcp < tr.TopPerHr.Out.Rcp {
		t.Errorf("high-water marks below current windows: %+v", tr)
	}
	if tr.Total.In.Msg*10 > tr.Total.In.Rcp || tr.Total.Out.Msg != tr.Total.Out.Rcp {
		t.Errorf("in msg %d rcp %d, out msg %d rcp %d", tr.Total.In.Msg, tr.Total.In.Rcp, tr.Total.Out.Msg, tr.Total.Out.Rcp)
	}
	var delivered, deferred, bounced int64
	for _, d := range s.Snapshot().Domains {
		delivered += d.Delivered
		deferred += d.Deferred
		bounced += d.Bounced
	}
	attempts := float64(delivered + deferred + bounced)
	if f := float64(delivered) / attempts; f < 0.85 || f > 0.95 {
		t.Errorf("delivered share %.3f, want about 0.90", f)
	}
	if f := float64(bounced) / attempts; f < 0.015 || f > 0.05 {
		t.Errorf("bounced share %.3f, want about 0.03", f)
	}
}

func TestRestart(t *testing.T) {
	s, c, _ := newTestSim(t, Options{})
	before := s.Snapshot()
	c.Add(30 * time.Second)
	s.Restart()
	snap := s.Snapshot()
	if !snap.Status.StartupTime.Equal(testNow.Add(30*time.Second)) || snap.Status.StartupTime.Equal(before.Status.StartupTime) {
		t.Errorf("startupTime %v", snap.Status.StartupTime)
	}
	if tr := snap.Status.Traffic; tr.Total.Out.Rcp != 0 || tr.LastHr.Out.Rcp != 0 || tr.TopPerMin.In.Rcp != 0 || tr.Total.BounceProcessed != 0 {
		t.Errorf("counters survive a restart: %+v", tr)
	}
	for _, v := range snap.VMTAs {
		if v.Delivered != 0 || v.MsgsPerSec != 0 {
			t.Errorf("%s: %d delivered after restart", v.Name, v.Delivered)
		}
	}
	if snap.Status.Queue.SMTP.Rcp == 0 {
		t.Error("queued mail must survive a restart")
	}
	c.Add(time.Minute)
	if s.Snapshot().Status.Traffic.Total.Out.Rcp == 0 {
		t.Error("counters do not grow after a restart")
	}
}

func TestDeferralRate(t *testing.T) {
	s, c, _ := newTestSim(t, Options{Rate: 200})
	isYahoo := map[string]bool{"yahoo.com": true, "aol.com": true, "ymail.com": true, "verizon.net": true, "yahoo.co.uk": true}
	sums := func() (dlv, def, bnc int64, backoff int) {
		snap := s.Snapshot()
		for _, d := range snap.Domains {
			if isYahoo[d.Name] {
				dlv, def, bnc = dlv+d.Delivered, def+d.Deferred, bnc+d.Bounced
			}
		}
		for _, q := range snap.Queues {
			if isYahoo[q.Domain] && q.Backoff {
				backoff++
			}
		}
		return
	}
	backoffBefore := 0
	for i := 0; i < 6; i++ { // over several episodes
		_, _, _, b := sums()
		backoffBefore += b
		c.Add(episode * time.Second)
	}
	s.SetDeferralRate("yahoo", 0.2)
	d0, f0, b0, _ := sums()
	backoffAfter := 0
	for i := 0; i < 6; i++ {
		c.Add(episode * time.Second)
		_, _, _, b := sums()
		backoffAfter += b
	}
	d1, f1, b1, _ := sums()
	frac := float64(f1-f0) / float64((d1-d0)+(f1-f0)+(b1-b0))
	if frac < 0.18 || frac > 0.22 {
		t.Errorf("yahoo deferral %.3f, want 0.2", frac)
	}
	if backoffAfter <= backoffBefore {
		t.Errorf("queues in backoff: %d before, %d after", backoffBefore, backoffAfter)
	}
	// Other ISPs are untouched.
	for _, d := range s.Snapshot().Domains {
		if d.Name == "gmail.com" {
			if f := float64(d.Deferred) / float64(d.Delivered+d.Deferred+d.Bounced); f > 0.06 {
				t.Errorf("gmail deferral %.3f", f)
			}
		}
	}
}

func TestQueueBoost(t *testing.T) {
	s, _, _ := newTestSim(t, Options{})
	base := s.Snapshot().Status.Queue.SMTP.Rcp
	if base >= 50000 {
		t.Fatalf("the default depth %d should not alert", base)
	}
	s.SetQueueBoost(120000 - base)
	snap := s.Snapshot()
	if snap.Status.Queue.SMTP.Rcp != 120000 || snap.Seed.QueueDepth != 120000 {
		t.Errorf("boosted depth %d", snap.Status.Queue.SMTP.Rcp)
	}
	var sum int64
	for _, q := range snap.Queues {
		sum += q.Rcp
	}
	if sum != 120000 {
		t.Errorf("queues sum to %d", sum)
	}
	s.SetQueueBoost(0)
	if got := s.Snapshot().Status.Queue.SMTP.Rcp; got != base {
		t.Errorf("boost removed: %d, want %d", got, base)
	}
}

func TestSizes(t *testing.T) {
	for _, n := range [][2]int{{1, 1}, {5, 3}, {60, 50}, {300, 300}} {
		s := New(Options{Domains: n[0], VMTAs: n[1], Clock: func() time.Time { return testNow }})
		snap := s.Snapshot()
		if len(snap.Domains) != n[0] || len(snap.VMTAs) != n[1] {
			t.Errorf("%v: %d domains, %d vmtas", n, len(snap.Domains), len(snap.VMTAs))
		}
		ips := map[string]bool{}
		names := map[string]bool{}
		for _, v := range snap.VMTAs {
			if ips[v.SourceIP] || names[v.Name] {
				t.Errorf("%v: duplicate vmta %s %s", n, v.Name, v.SourceIP)
			}
			ips[v.SourceIP], names[v.Name] = true, true
		}
		var sum int64
		for _, d := range snap.Domains {
			sum += d.Delivered
		}
		if sum != snap.Status.Traffic.Total.Out.Rcp {
			t.Errorf("%v: delivered %d, total out %d", n, sum, snap.Status.Traffic.Total.Out.Rcp)
		}
	}
}

// TestConcurrent runs readers, commands and setters at once on a real clock;
// its value is under -race.
func TestConcurrent(t *testing.T) {
	s := New(Options{Seed: 9, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	paths := []string{"/status", "/queues?format=xml", "/domains", "/vmtas", "/status.json", "/queue.csv", "/domain.csv", "/vmta.csv"}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				resp, err := srv.Client().Get(srv.URL + paths[(g+i)%len(paths)])
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			s.Command("pause queue gmail.com/*")
			s.Command("resume queue gmail.com/*")
			s.SetDeferralRate("yahoo", float64(i)/100)
			s.SetQueueBoost(int64(i) * 100)
			s.SetFaults(Faults{})
			if i%10 == 0 {
				s.Restart()
			}
		}
	}()
	wg.Wait()
}

func TestAlloc(t *testing.T) {
	w := []float64{0.5, 0.3, 0.2, 0}
	out := make([]int64, len(w))
	for total := int64(0); total < 50; total++ {
		alloc(total, w, out)
		var sum int64
		for _, v := range out {
			sum += v
		}
		if sum != total || out[3] != 0 {
			t.Fatalf("alloc(%d) = %v", total, out)
		}
	}
}
