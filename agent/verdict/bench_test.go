package verdict

import (
	"fmt"
	"runtime"
	"testing"
)

// benchCounts is one 10 s interval of a large server: 200 source IPs in 10
// pools, each sending to 20 ISPs: 4,000 keys.
func benchCounts() map[Key]Counts {
	m := make(map[Key]Counts, 4000)
	for ip := range 200 {
		for isp := range 20 {
			m[Key{fmt.Sprintf("isp-%02d", isp), fmt.Sprintf("pool-%d", ip%10), fmt.Sprintf("203.0.%d.%d", ip/250, ip%250)}] =
				Counts{Attempts: 40, Deferred: int64(1 + ip%3), Bounced: 1}
		}
	}
	return m
}

// BenchmarkObserve: one op is one 10 s interval into a full 15-minute
// window stepping every minute; every sixth judges 4,000 keys in 200
// groups. The bytes held by a full window are reported as window-B.
func BenchmarkObserve(b *testing.B) {
	counts := benchCounts()
	w := NewWindow(DefaultConfig())
	start := int64(0)
	for range 6 * 16 { // fill the window
		w.Observe(start, start+10, counts)
		start += 10
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	points := 0
	for b.Loop() {
		for _, r := range w.Observe(start, start+10, counts) {
			points += len(w.Points(r))
		}
		start += 10
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(points)/float64(b.N), "points/op")
	held := NewWindow(DefaultConfig())
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range int64(6 * 16) {
		held.Observe(i*10, i*10+10, counts)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "window-B")
	runtime.KeepAlive(held)
}
