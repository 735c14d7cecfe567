// Package acct reads PowerMTA's accounting CSV files and turns them into
// points of the configured views (pmta_acct, pmta_acct_domain, …; see View)
// and pmta_acct_diag points.
//
// The work is split the way the data flows, in parts that each do one thing
// (the lines OpenTelemetry's fileconsumer draws between its fileset,
// checkpoint, reader and scanner):
//
//   - scanner (scanner.go) splits RFC 4180 records out of a byte buffer;
//     parseRecord (record.go, timeparse.go) maps one record onto the few
//     columns the agent uses, through the header of the file it came from;
//     the aggregator (aggregate.go, diag.go) sums records per interval and
//     tag set; timeRange (timerange.go) refuses implausible times. None of
//     these does I/O.
//   - lineParser (reader.go) feeds a file's bytes through them, from a
//     fileCursor: to the end (readAll), up to a byte offset (readTo) or
//     until a time (readUntil).
//   - windowReader (window.go) reads several files side by side in windows
//     of timeLogged, so that acct and diag files holding the same times
//     aggregate as if read live. The tailer's catch-up of a backlog and
//     Backfill (backfill.go) both read through it.
//   - fileset (fileset.go) is the tailer's files: found by glob, known by
//     device and inode or by fingerprint through renames, moves, copies and
//     links, truncated, missing or deleted, idle; problems.go reports what
//     cannot be read.
//   - journal (journal.go, journal_fold.go) is the checkpoint and its
//     pending cuts — commit in order, replay after a crash, thin, prune and
//     fold into jumps while a batch is unconfirmed — under its own lock;
//     checkpoint.go holds the format on disk.
//   - Tailer (tailer.go) is the Source: it owns the state directory (and its
//     lock), composes the parts and steps them in PollOnce; catchup.go is
//     how it reads the fileset's files, commit.go how it cuts, emits and
//     replays; stats.go is its health.
//   - Config (config.go) is the acct: section of the configuration, with
//     its defaults (DefaultConfig) and checks (Validate), written once.
//
// Guarantee: every record read is counted exactly once in every view — the
// sum of count over each view's points equals the records read — across restarts, late
// records and crashes (after a crash the same points are emitted again, with
// the same tags and timestamps, so the sink's last write wins). Records of a
// file deleted or truncated while the tailer was stopped, beyond the
// checkpoint, cannot be read and are lost.
//
// A batch whose Done never comes (a store that refused it) holds the
// checkpoint back: a restart replays from before it and emits it again. Such
// a batch is reported (the pending_cuts and last_commit_unix stats, and an
// error logged at most hourly), and the confirmed batches after it are folded
// into one saved state once more than 1,000 cuts wait, so that the
// checkpoint stays small however long it waits.
package acct
