package verdict

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A window saved and restored in another process judges the next
// intervals exactly as the one that ran on: the same points, the same
// changes; and an interval it saw before (a cut replayed after the
// restart) is left out.
func TestStateRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window, cfg.Every = 5*time.Minute, time.Minute
	r := rand.New(rand.NewPCG(1, 2))
	interval := func(i int64) map[Key]Counts {
		m := map[Key]Counts{}
		for ip := range 6 {
			n := int64(20 + r.IntN(20))
			d := n / 30
			if ip == 5 && i >= 20 && i < 50 {
				d = n / 2 // an IP is bad for five minutes, before and after the save
			}
			m[Key{"yahoo", "pool-yahoo", fmt.Sprintf("10.0.0.%d", ip)}] = Counts{Attempts: n, Deferred: d, Bounced: int64(r.IntN(2))}
		}
		return m
	}
	feed := make([]map[Key]Counts, 80)
	for i := range feed {
		feed[i] = interval(int64(i))
	}
	t0 := int64(1_700_000_040)
	a := NewWindow(cfg)
	for i := range 47 { // stop in the middle of a step
		a.Observe(t0+10*int64(i), t0+10*int64(i)+10, feed[i])
	}
	b := NewWindow(cfg)
	saved, err := a.MarshalState(t0 + 470)
	if err != nil {
		t.Fatal(err)
	}
	upTo, err := b.RestoreState(saved)
	if err != nil || upTo != t0+470 {
		t.Fatalf("RestoreState: %d, %v", upTo, err)
	}
	if a.Stats().Keys != b.Stats().Keys {
		t.Fatalf("keys %d and %d", a.Stats().Keys, b.Stats().Keys)
	}
	// A replayed interval: the restored window saw it.
	if res := b.Observe(t0+450, t0+460, feed[45]); res != nil {
		t.Fatalf("a replayed interval gave %v", res)
	}
	render := func(w *Window, res []Result) string {
		var out []string
		for _, x := range res {
			for _, p := range w.Points(x) {
				out = append(out, line(p))
			}
			for _, c := range x.Changes {
				out = append(out, fmt.Sprintf("change %v %s → %s", c.Key, c.From, c.Verdict))
			}
		}
		return strings.Join(out, "\n")
	}
	var changes int
	for i := 47; i < len(feed); i++ {
		start := t0 + 10*int64(i)
		ra, rb := a.Observe(start, start+10, feed[i]), b.Observe(start, start+10, feed[i])
		if ga, gb := render(a, ra), render(b, rb); ga != gb {
			t.Fatalf("interval %d:\nran on:\n%s\nrestored:\n%s", i, ga, gb)
		}
		for _, x := range ra {
			changes += len(x.Changes)
		}
	}
	if changes == 0 {
		t.Fatal("no verdict changed: the test compares too little")
	}
}

func TestRestoreRefuses(t *testing.T) {
	cfg := DefaultConfig()
	w := NewWindow(cfg)
	w.Observe(0, 60, map[Key]Counts{{"google", "p", "10.0.0.1"}: {Attempts: 300, Deferred: 3}})
	good, err := w.MarshalState(60)
	if err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Window = 30 * time.Minute
	if _, err := NewWindow(other).RestoreState(good); err == nil || !strings.Contains(err.Error(), "steps of") {
		t.Errorf("another length: %v", err)
	}
	if _, err := w.RestoreState(good); err == nil {
		t.Error("restored into a window that has seen something")
	}
	for name, bad := range map[string]string{
		"not json":          "{",
		"version":           `{"version":9,"window_s":900,"every_s":60}`,
		"bad index":         `{"version":1,"window_s":900,"every_s":60,"keys":[["a","b","c"]],"steps":[{"start":0,"entries":[[1,5,1,1]]}]}`,
		"more than tried":   `{"version":1,"window_s":900,"every_s":60,"keys":[["a","b","c"]],"steps":[{"start":0,"entries":[[0,5,4,4]]}]}`,
		"negative":          `{"version":1,"window_s":900,"every_s":60,"keys":[["a","b","c"]],"cur":[[0,-5,0,0]]}`,
		"sum wraps":         `{"version":1,"window_s":900,"every_s":60,"keys":[["a","b","c"]],"steps":[{"start":0,"entries":[[0,5,9223372036854775807,2]]}]}`,
		"steps unordered":   `{"version":1,"window_s":900,"every_s":60,"steps":[{"start":120},{"start":60}]}`,
		"step off the grid": `{"version":1,"window_s":900,"every_s":60,"steps":[{"start":61}]}`,
	} {
		fresh := NewWindow(cfg)
		if _, err := fresh.RestoreState([]byte(bad)); err == nil {
			t.Errorf("%s: restored", name)
		}
		if fresh.started || len(fresh.idx) != 0 {
			t.Errorf("%s: a refused state left something in the window", name)
		}
	}
	if _, err := NewWindow(cfg).MarshalState(0); err == nil {
		t.Error("an empty window saved")
	}
}
