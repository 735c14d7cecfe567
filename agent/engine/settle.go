package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// DeliveryCounts are what a delivery did with the points handed to it. They
// reconcile at every moment:
//
//	Recovered + Enqueued = Written + Refused + DeadLettered + Dropped + Queued
type DeliveryCounts struct {
	// Recovered were waiting in the store when the delivery started (a
	// disk queue after a restart); Enqueued were handed to it since.
	Recovered, Enqueued int64
	// Written were accepted by the sink.
	Written int64
	// Refused were refused by the sink for good and not kept; DeadLettered
	// were refused for good and kept in the dead-letter file.
	Refused, DeadLettered int64
	// Dropped were lost to the store's bound, or to a store that kept
	// refusing appends (Unstored of them).
	Dropped, Unstored int64
	// Queued still wait: in the store and not settled, or held in memory
	// while the store refuses appends.
	Queued int64
}

// taken is how many points the sink settled: written, refused,
// dead-lettered or dropped.
func (c DeliveryCounts) taken() int64 { return c.Written + c.Refused + c.DeadLettered + c.Dropped }

// Counts returns the delivery's counts, as one consistent reading.
func (d *Delivery) Counts() DeliveryCounts {
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	return d.countsLocked()
}

// countsLocked reads the counts; the caller holds storeMu, so that neither
// the store nor the counters move meanwhile.
func (d *Delivery) countsLocked() DeliveryCounts {
	_, pending, _ := d.store.Pending()
	dropped := storeDropped(d.store) - d.droppedAtStart - d.overlap
	queued := int64(pending + d.retainedPointsLocked())
	if cur := d.curCopy; cur.seq != 0 {
		settled := int64(cur.total - cur.left)
		if d.store.Holds(cur.seq) {
			queued -= settled // counted already, acknowledged when the rest is
		} else {
			// The store's bound dropped the entry being written: it is
			// settled here, or still waits here.
			dropped -= int64(cur.total)
			queued += int64(cur.left)
		}
	}
	return DeliveryCounts{
		Recovered: d.recovered, Enqueued: d.enqueued, Written: d.written,
		Refused: d.dropPerm, DeadLettered: d.deadLettered,
		Dropped: dropped + d.retainDropped, Unstored: d.retainDropped, Queued: queued,
	}
}

// storeDropped is what the store's bound has dropped in its life.
func storeDropped(st agent.Store) int64 {
	if r, ok := st.(interface{ Stats() []agent.Field }); ok {
		for _, f := range r.Stats() {
			if f.Key == "dropped_points" {
				n, _ := agent.FieldNumber(f.Value)
				return int64(n)
			}
		}
	}
	return 0
}

// refuse settles points the sink refused for good: kept in the dead-letter
// file, or counted as refused when there is none or it cannot take them.
// It logs the first refusal, then at most every logEvery with the number of
// points since.
func (d *Delivery) refuse(points []agent.Point, cause error) {
	counter := &d.dropPerm
	var kept string
	now := d.now()
	if dl := d.cfg.DeadLetters; dl != nil {
		reason := fmt.Sprintf("refused for good by sink %s: %v", d.sink.Name(), cause)
		if err := dl.Keep(points, reason); err != nil {
			if due, _, _, _ := d.dlFails.Hit(now); due {
				d.log.Error("cannot keep refused points in the dead-letter file; they are dropped", "points", len(points),
					"err", err, "refused_because", cause)
			}
		} else {
			counter = &d.deadLettered
			if p, ok := dl.(interface{ Path() string }); ok {
				kept = p.Path()
			}
		}
	}
	d.refusedPoints += int64(len(points))
	if due, _, _, _ := d.refusals.Hit(now); due {
		args := append(slices.Clip(d.endpoint), "points", d.refusedPoints, "err", cause)
		if kept != "" {
			args = append(args, "dead_letter_file", kept)
		}
		d.log.Error("sink refused points for good; the other points go on", args...)
		d.refusedPoints = 0
	}
	d.settle(len(points), counter)
}

// settle takes n points off the in-flight entry, counting them in counter,
// and acknowledges the entry once nothing is left of it. A refusal restores
// the full write size: the halving that found the refused point is over.
func (d *Delivery) settle(n int, counter *int64) {
	cur := d.cur
	cur.rest = cur.rest[n:]
	if counter == &d.written {
		// Halving that found one half fine goes on with twice the size,
		// so that the other half is tried next and a search that met a
		// one-off refusal grows back to full writes.
		cur.limit = min(2*cur.limit, cur.maxLimit)
	} else {
		cur.limit = cur.maxLimit
	}
	d.storeMu.Lock()
	defer d.storeMu.Unlock()
	if counter != nil {
		*counter += int64(n)
	}
	d.curCopy = inflightCount{seq: cur.seq, total: cur.total, left: len(cur.rest)}
	if len(cur.rest) > 0 {
		return
	}
	if !d.store.Holds(cur.seq) {
		// The bound dropped the entry while it was being written: the
		// store counted its points as dropped, and they were settled here.
		d.overlap += int64(cur.total)
	}
	if err := d.store.Ack(cur.seq); err != nil {
		// The entry will be written again after a restart: harmless, as
		// points replay onto the same series and timestamps.
		d.log.Warn("cannot acknowledge a written entry", "seq", cur.seq, "err", err)
	}
	d.curCopy = inflightCount{}
	d.cur = nil
}

// inflightCount is what Stats needs of the entry being written, kept under
// storeMu (the entry itself belongs to the writing goroutine).
type inflightCount struct {
	seq         uint64
	total, left int
}

// Component and Stats make a Delivery an agent.StatsReporter.
func (d *Delivery) Component() string { return "sink_" + d.sink.Name() }

// Stats reports the sink's buffer and write outcomes, with the store's own.
// The point counts reconcile at every moment:
//
//	recovered_points + enqueued_points = written_points + dropped_rejected +
//	    dead_lettered_points + dropped_points + queued_points
//
// recovered: waiting in the store when the delivery started (a disk queue
// after a restart); enqueued: handed to the sink since; written: accepted by
// the sink; dropped_rejected: refused by the sink for good and not kept in a
// dead-letter file; dead_lettered: refused for good and kept there; dropped:
// lost to the store's bound or to a store that kept refusing appends
// (dropped_unstored of them); queued: still waiting.
func (d *Delivery) Stats() []agent.Field {
	d.storeMu.Lock()
	c := d.countsLocked()
	retained := len(d.retained)
	d.storeMu.Unlock()
	entries, _, bytes := d.store.Pending()
	f := []agent.Field{
		{Key: "queued_points", Value: c.Queued},
		{Key: "queued_entries", Value: int64(entries)},
		{Key: "queued_bytes", Value: bytes},
		{Key: "recovered_points", Value: c.Recovered},
		{Key: "enqueued_points", Value: c.Enqueued},
		{Key: "written_points", Value: c.Written},
		{Key: "dropped_rejected", Value: c.Refused},
		{Key: "dead_lettered_points", Value: c.DeadLettered},
		{Key: "dropped_points", Value: c.Dropped},
		{Key: "errors", Value: d.errs.Load()},
		{Key: "append_errors", Value: d.appendErr.Load()},
		{Key: "retained_entries", Value: int64(retained)},
		{Key: "dropped_unstored", Value: c.Unstored},
		{Key: "splits", Value: d.splits.Load()},
		{Key: "last_success_unix", Value: d.lastOK.Load()},
		{Key: "failing_since_unix", Value: d.failingSince.Load()},
		{Key: "write_duration_s", Value: time.Duration(d.lastWrite.Load()).Seconds()},
	}
	if r, ok := d.store.(interface{ Stats() []agent.Field }); ok {
		for _, sf := range r.Stats() {
			switch sf.Key {
			case "bytes", "entries", "points", "dropped_points":
				continue // the same as, or part of, the fields above
			}
			f = append(f, sf)
		}
	}
	return f
}
