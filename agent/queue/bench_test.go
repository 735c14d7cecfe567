package queue

import (
	"testing"
	"time"
)

// BenchmarkAppendAck is the delivery loop's steady state with a small
// backlog: Append an entry of 5,000 points, read the oldest (from disk: the
// backlog keeps it out of the one-entry caches) and the newest, acknowledge
// the oldest. Default options (SyncInterval, 1 s) unless the name says
// otherwise.
func BenchmarkAppendAck(b *testing.B) {
	for _, c := range []struct {
		name string
		sync SyncPolicy
	}{{"interval", SyncInterval}, {"always", SyncAlways}, {"never", SyncNever}} {
		b.Run(c.name, func(b *testing.B) {
			q := openQ(b, Options{Dir: b.TempDir(), Sync: c.sync, SyncEvery: time.Second})
			batch := makePoints(1, 5000, t0)
			const backlog = 8
			for range backlog {
				mustAppend(b, q, batch)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := q.Append(batch, nil); err != nil {
					b.Fatal(err)
				}
				e, ok := q.Oldest()
				if !ok || len(e.Points) != len(batch) {
					b.Fatal("Oldest lost the entry")
				}
				q.Newest()
				if err := q.Ack(e.Seq); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

func BenchmarkCodec(b *testing.B) {
	batch := makePoints(1, 5000, t0)
	blob := AppendPoints(nil, batch)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		var buf []byte
		for range b.N {
			buf = AppendPoints(buf[:0], batch)
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
		b.ReportMetric(float64(len(blob))/float64(len(batch)), "bytes/point")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(blob)))
		for range b.N {
			if _, err := DecodePoints(blob); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
	})
}
