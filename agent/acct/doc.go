// Package acct reads PowerMTA's accounting CSV files and turns them into
// pmta_acct and pmta_acct_diag points.
//
// The work is split the way the data flows: scanner splits RFC 4180 records
// out of a byte buffer; parseRecord maps one record onto the few columns the
// agent uses, through the header of the file it came from; the aggregator sums
// records per interval and tag set. None of these does I/O. The Tailer follows
// live files (by content fingerprint, through rotation, moves and deletion)
// and keeps a checkpoint that only advances once emitted points are safe;
// it reads a backlog (hours of acct and diag records for the same times) in
// windows of time across all files, as Backfill does for whole files on
// demand, so that the files' records for one interval meet in it.
//
// Guarantee: every record read is counted exactly once — the sum of count
// over all pmta_acct points equals the records read — across restarts, late
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
