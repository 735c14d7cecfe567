package confwatch

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtaconf"
)

// Kind is the pmta_event kind of a configuration change.
const Kind = "config_change"

// report logs the changes of one check and hands them to emit as one batch
// of pmta_event points: at most MaxEvents, then one summary. With a
// StateDir, the changes shown also go to the journal.
func (w *Watcher) report(now time.Time, changes []pmtaconf.Change) {
	shown := changes[:min(len(changes), MaxEvents)]
	points := make([]agent.Point, 0, len(shown)+1)
	var journal []Entry
	for i, c := range shown {
		text := bound(c.String())
		w.log.Info("PowerMTA configuration changed", "block", c.Block, "directive", c.Directive, "change", text, "at", c.Pos.String())
		points = append(points, changePoint(c, text, at(now, i)))
		if w.cfg.StateDir != "" {
			journal = append(journal, entryOf(c, text, at(now, i)))
		}
	}
	if err := appendJournal(JournalPath(w.cfg.StateDir), journal, journalKeep); err != nil {
		// The events still go out; only impact's default loses this change.
		w.log.Warn("cannot record the configuration change", "err", err)
	}
	if more := len(changes) - len(shown); more > 0 {
		w.eventsFolded.Add(int64(more))
		text := fmt.Sprintf("%d more changes", more)
		w.log.Info("PowerMTA configuration changed", "change", text)
		points = append(points, agent.NewPoint("pmta_event",
			[]agent.Tag{{Key: "kind", Value: Kind}},
			[]agent.Field{{Key: "change", Value: text}, {Key: "count", Value: int64(more)}},
			at(now, len(shown))))
	}
	if w.emit != nil {
		w.emit(agent.Batch{Source: w.Name(), Points: points})
	}
}

// at is the timestamp of the i-th event of a check: the time of the check
// plus i nanoseconds, so that two changes to one directive of one block
// (two pool members added) stay two points — a store keeps one point per
// series and time. The sinks write nanoseconds.
func at(now time.Time, i int) time.Time { return now.Add(time.Duration(i)) }

// changePoint is one change as a pmta_event point: tags kind, block and
// directive (each bounded like every tag, and left out when empty: the top
// level, a whole block); fields change (the line a person reads), op
// (changed, added, removed), old, new, file, line, count=1, which a
// dashboard sums, and key — what a keyed directive configures (the macro
// of a domain-macro line, the address of an http-access rule) — when it
// has one.
func changePoint(c pmtaconf.Change, text string, t time.Time) agent.Point {
	tags := []agent.Tag{{Key: "kind", Value: Kind}}
	for _, kv := range [][2]string{{"block", c.Block}, {"directive", c.Directive}} {
		if kv[1] != "" {
			tags = append(tags, agent.Tag{Key: kv[0], Value: agent.SafeTag(kv[1])})
		}
	}
	fields := []agent.Field{
		{Key: "change", Value: text},
		{Key: "op", Value: c.Op.String()},
		{Key: "old", Value: bound(c.Old)},
		{Key: "new", Value: bound(c.New)},
		{Key: "file", Value: bound(c.Pos.File)},
		{Key: "line", Value: int64(c.Pos.Line)},
		{Key: "count", Value: int64(1)},
	}
	if c.Key != "" {
		fields = append(fields, agent.Field{Key: "key", Value: bound(c.Key)})
	}
	return agent.NewPoint("pmta_event", tags, fields, t)
}

// bound cuts s to maxFieldBytes at a character boundary, marking the cut.
func bound(s string) string {
	if len(s) <= maxFieldBytes {
		return s
	}
	cut := maxFieldBytes - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
