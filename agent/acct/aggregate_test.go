package acct

import (
	"fmt"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func rec(typ recType, ts int64, domain, diag string) *record {
	return &record{typ: typ, timeLogged: ts, domain: []byte(domain), vmta: []byte("v1"), dsnStatus: []byte("4.7.0 (x)"), dsnDiag: []byte(diag), size: 10}
}

func TestAggregateIntervalsAndLate(t *testing.T) {
	a := newAggregator(10*time.Second, 20, agent.NewISPMap(nil))
	a.add(rec(typeD, 1005, "gmail.com", ""))
	a.add(rec(typeD, 1009, "gmail.com", ""))
	a.add(rec(typeB, 1012, "yahoo.com", "smtp;550 no"))
	pts, changed := a.closeBefore(1010)
	// One point in each default view.
	if !changed || len(pts) != 2 || pts[0].Time.Unix() != 1000 || pts[1].Time.Unix() != 1000 {
		t.Fatalf("close before 1010: %v", sortedLP(pts))
	}
	if c, _ := pts[0].FieldValue("count"); c != int64(2) {
		t.Fatalf("count %v, want 2", c)
	}
	if isp, _ := pts[0].TagValue("isp"); isp != "google" {
		t.Fatalf("isp %q", isp)
	}
	// Closing again at or before the same boundary changes nothing.
	if pts, changed := a.closeBefore(1010); changed || pts != nil {
		t.Fatalf("closed twice: %v", pts)
	}
	// A record for the closed interval goes to the interval at closedUpTo.
	a.add(rec(typeD, 1001, "gmail.com", ""))
	if a.late != 1 {
		t.Fatalf("late = %d", a.late)
	}
	pts, _ = a.closeAll()
	if got := sumCount(t, pts); got != 2 {
		t.Fatalf("second close counted %d, want 2", got)
	}
	for _, p := range pts {
		if p.Time.Unix() != 1010 {
			t.Fatalf("point at %d, want 1010: %v", p.Time.Unix(), sortedLP(pts))
		}
	}
	if a.records != 4 {
		t.Fatalf("records %d", a.records)
	}
}

func TestAggregateTopDiag(t *testing.T) {
	a := newAggregator(10*time.Second, 3, agent.NewISPMap(nil))
	// Five patterns with counts 5,4,3,2,1 for t/yahoo, one for b/yahoo.
	for i := range 5 {
		for range 5 - i {
			a.add(rec(typeT, 100, "yahoo.com", fmt.Sprintf("smtp;421 reason%c", 'a'+i)))
		}
	}
	a.add(rec(typeB, 100, "yahoo.com", "smtp;550 gone"))
	a.add(rec(typeD, 100, "yahoo.com", "smtp;250 ok")) // d has no diag points
	pts, _ := a.closeAll()
	diag := map[string]int64{}
	for _, p := range pts {
		if p.Measurement != measDiag {
			continue
		}
		typ, _ := p.TagValue("type")
		d, _ := p.TagValue("diag")
		c, _ := p.FieldValue("count")
		diag[typ+"|"+d] = c.(int64)
	}
	want := map[string]int64{"t|421 reasona": 5, "t|421 reasonb": 4, "t|421 reasonc": 3, "t|other": 3, "b|550 gone": 1}
	if fmt.Sprint(diag) != fmt.Sprint(want) {
		t.Fatalf("diag points %v, want %v", diag, want)
	}
	if a.folded != 2 {
		t.Fatalf("folded %d, want 2", a.folded)
	}
}

func TestAggregateStateRoundTrip(t *testing.T) {
	isp := agent.NewISPMap(nil)
	a := newAggregator(10*time.Second, 20, isp)
	for i := range 50 {
		r := rec(recType(i%int(numTypes-1)+1), int64(1000+i), genDomains[i%len(genDomains)], "smtp;421 try later")
		r.timeQueued, r.hasQueued = int64(990), true
		a.add(r)
	}
	a.closeBefore(1020)
	b := newAggregator(10*time.Second, 20, isp)
	if err := b.restore(a.state()); err != nil {
		t.Fatal(err)
	}
	pa, _ := a.closeAll()
	pb, _ := b.closeAll()
	if sortedLP(pa) != sortedLP(pb) {
		t.Fatalf("restored state emits other points:\n%s\nvs\n%s", sortedLP(pa), sortedLP(pb))
	}
	if err := b.restore(aggState{Intervals: []intervalState{{Start: 1003}}}); err == nil {
		t.Fatal("restore accepted a misaligned interval")
	}
}
