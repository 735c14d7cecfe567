package acct

import (
	"sync/atomic"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/verdict"
)

// tailerStats are the tailer's own counters, read by Stats from any
// goroutine; the fileset and the journal keep theirs.
type tailerStats struct {
	// read holds what the polling goroutine counts, published whole so
	// that a reader sees records, emitted and open of one moment.
	read                          atomic.Pointer[readCounts]
	checkpointCorrupt, readErrors atomic.Int64
}

// readCounts are the parser's and aggregator's counts at the end of a poll
// (or a catch-up window). lagFrom is the time (Unix ms) of the oldest unread
// data, 0 when everything is read: see noteLag.
type readCounts struct {
	lines, records, malformed, late, bytesRead, diagFolded int64
	emitted, open, restored, filesOpen, tailLagBytes       int64
	verdict                                                verdict.Stats
	outOfRange                                             [numRangeReasons]int64
	lagFrom                                                int64
}

// Stats implements agent.StatsReporter. The record counts reconcile:
//
//	records_read + records_restored = records_emitted + records_open +
//	    malformed + out_of_range
//
// records_read are the data rows read by this process (header rows and
// blank lines are not records); records the ones of them aggregated;
// records_restored those in the open intervals of the checkpoint it started
// from; records_emitted those in the pmta_acct points of closed intervals;
// records_open those in intervals still open; out_of_range the ones refused
// for their timeLogged (out_of_range_future, _old, _invalid).
//
// last_checkpoint_unix is when the checkpoint file was last written (at
// every cut); last_commit_unix when the state it resumes from last moved,
// that is when a batch and every earlier one had been confirmed (0 before
// the first commit of this process); pending_cuts counts the emitted batches
// whose Done has not come. Cuts pending while last_commit_unix grows old
// mean a sink holds a batch back.
//
// tail_lag_s is the age of the oldest unread data — the timeLogged of the
// first unread record while a backlog is read, else the time unread bytes
// were first seen — and 0 when nothing is unread; tail_lag_bytes is how much
// is unread. problems counts the globs' directories and files that cannot
// be read (see Problems).
//
// verdict_points counts the pmta_verdict points made since the tailer
// started (a window carried over a reload counts on); verdict_ip_specific
// and verdict_pool_wide are the rows (IPs and pools) with that verdict at
// the last step; verdict_dropped_attempts the attempts left unjudged
// because their ISP × pool × source IP found the window full
// (verdict.MaxKeys).
func (t *Tailer) Stats() []agent.Field {
	s, fs, j := &t.st, t.files, t.journal
	r := s.read.Load()
	if r == nil {
		r = &readCounts{}
	}
	var oor int64
	for _, n := range r.outOfRange {
		oor += n
	}
	lag := 0.0
	if r.lagFrom > 0 {
		lag = float64(max(t.now().UnixMilli()-r.lagFrom, 0)) / 1000
	}
	return []agent.Field{
		{Key: "lines_read", Value: r.lines},
		{Key: "records_read", Value: r.records + r.malformed + oor},
		{Key: "records", Value: r.records},
		{Key: "records_restored", Value: r.restored},
		{Key: "records_emitted", Value: r.emitted},
		{Key: "records_open", Value: r.open},
		{Key: "malformed", Value: r.malformed},
		{Key: "out_of_range", Value: oor},
		{Key: "out_of_range_future", Value: r.outOfRange[tooNew]},
		{Key: "out_of_range_old", Value: r.outOfRange[tooOld]},
		{Key: "out_of_range_invalid", Value: r.outOfRange[implausible]},
		{Key: "late", Value: r.late},
		{Key: "files_open", Value: r.filesOpen},
		{Key: "files_done", Value: fs.filesDone.Load()},
		{Key: "truncations", Value: fs.truncations.Load()},
		{Key: "files_held_as_copies", Value: fs.held.Load()},
		{Key: "bytes_read", Value: r.bytesRead},
		{Key: "tail_lag_bytes", Value: r.tailLagBytes},
		{Key: "tail_lag_s", Value: lag},
		{Key: "diag_folded", Value: r.diagFolded},
		{Key: "last_checkpoint_unix", Value: j.lastCheckpoint.Load()},
		{Key: "last_commit_unix", Value: j.lastCommit.Load()},
		{Key: "pending_cuts", Value: j.pendingCuts.Load()},
		{Key: "checkpoint_corrupt", Value: s.checkpointCorrupt.Load()},
		{Key: "checkpoint_errors", Value: j.checkpointErrors.Load()},
		{Key: "read_errors", Value: s.readErrors.Load()},
		{Key: "problems", Value: int64(len(t.Problems()))},
		{Key: "verdict_points", Value: r.verdict.Points},
		{Key: "verdict_ip_specific", Value: r.verdict.IPSpecific},
		{Key: "verdict_pool_wide", Value: r.verdict.PoolWide},
		{Key: "verdict_dropped_attempts", Value: r.verdict.Dropped},
	}
}

// updateStats publishes the parser's and aggregator's counts, which only
// the polling goroutine touches, with what is unread (see noteLag), as one
// reading for Stats.
func (t *Tailer) updateStats(now time.Time) {
	p, a := t.parser, t.agg
	r := &readCounts{
		lines: p.lines, records: a.records, malformed: p.malformed, late: a.late, bytesRead: p.bytesRead,
		diagFolded: a.folded, emitted: a.emitted, open: a.inOpen, restored: a.restored, outOfRange: p.outOfRange,
	}
	if a.verdicts != nil {
		r.verdict = a.verdicts.Stats()
	}
	for _, e := range t.files.entries {
		if e.f != nil {
			r.filesOpen++
		}
	}
	r.tailLagBytes, r.lagFrom = t.files.noteLag(now)
	t.st.read.Store(r)
}

// noteLag works out what is unread: the bytes, and since when (Unix ms) the
// oldest unread data has waited. Each file with unread bytes remembers since
// when (lagFrom: the first scan that saw them, or, during a catch-up, the
// timeLogged of its first unread record, which readSeen sets); a file read
// to its end forgets it. So the lag says how far behind the reading is,
// whatever the newest record's time — a record from the future cannot pin
// it at 0.
func (s *fileset) noteLag(now time.Time) (bytes, from int64) {
	nowMs := now.UnixMilli()
	for _, e := range s.entries {
		// A last line not finished yet is seen, not unread: a file that
		// ends in one — PowerMTA writing, or killed in the middle of a
		// line — is not lagging.
		read := max(e.offset, e.eof)
		if e.size <= read {
			e.lagFrom = 0
			continue
		}
		bytes += e.size - read
		if e.lagFrom == 0 {
			e.lagFrom = nowMs
		}
		if from == 0 || e.lagFrom < from {
			from = e.lagFrom
		}
	}
	return bytes, from
}
