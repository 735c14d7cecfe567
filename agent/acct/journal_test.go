package acct

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"
)

// Tests of the journal alone: snapshots are opaque JSON to it, so these use
// small stand-ins ({"n":1}) and read back what it wrote to disk.

type journalRig struct {
	t   *testing.T
	dir string
	now time.Time
	log *logtest.Recorder
	j   *journal
}

func newJournalRig(t *testing.T) *journalRig {
	r := &journalRig{t: t, dir: t.TempDir(), now: testStart, log: logtest.New()}
	r.j = r.open()
	return r
}

// open makes a journal on the rig's directory, as a (re)start does.
func (r *journalRig) open() *journal {
	now := func() time.Time { return r.now }
	log := r.log.Logger()
	return newJournal(r.dir, log, newLimitedLog(log, slog.LevelWarn, errLogEvery, now), now)
}

func snapN(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

func noFiles() []cutFile { return nil }

// cut journals a new cut whose state after it is snapN(n).
func (r *journalRig) cut(n int, empty bool) uint64 {
	r.t.Helper()
	seq, err := r.j.cut(nil, int64(n*10), noFiles, snapN(n), empty)
	if err != nil {
		r.t.Fatalf("cut %d: %v", n, err)
	}
	return seq
}

// disk reads the checkpoint file back.
func (r *journalRig) disk() *checkpointFile {
	r.t.Helper()
	cf, _, err := loadCheckpoint(r.dir)
	if err != nil || cf == nil {
		r.t.Fatalf("checkpoint: %v (present: %v)", err, cf != nil)
	}
	return cf
}

func TestJournalCommitsInOrder(t *testing.T) {
	r := newJournalRig(t)
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	first, second := r.cut(1, false), r.cut(2, false)
	if cf := r.disk(); cf.Seq != 0 || len(cf.Pending) != 2 || cf.Pending[0].Seq != first || cf.Pending[1].ClosedUpTo != 20 {
		t.Fatalf("on disk after two cuts: seq %d, pending %+v", cf.Seq, cf.Pending)
	}
	commitAt := r.j.lastCommit.Load()
	r.now = r.now.Add(time.Minute)
	r.j.done(second)
	if cf := r.disk(); cf.Seq != 0 || r.j.lastCommit.Load() != commitAt || r.j.pendingCuts.Load() != 1 {
		t.Fatalf("the second Done alone committed: seq %d, pending_cuts %d", cf.Seq, r.j.pendingCuts.Load())
	}
	r.j.done(first)
	cf := r.disk()
	if cf.Seq != second || string(cf.Snapshot) != string(snapN(2)) || len(cf.Pending) != 0 {
		t.Fatalf("after both Dones: seq %d, snapshot %s, pending %d", cf.Seq, cf.Snapshot, len(cf.Pending))
	}
	if r.j.lastCommit.Load() != r.now.Unix() || r.j.pendingCuts.Load() != 0 {
		t.Fatalf("last_commit %d, pending_cuts %d", r.j.lastCommit.Load(), r.j.pendingCuts.Load())
	}
	// A cut that emits nothing waits for nobody.
	r.cut(3, true)
	if cf := r.disk(); string(cf.Snapshot) != string(snapN(3)) {
		t.Fatalf("an empty cut did not commit: snapshot %s", cf.Snapshot)
	}
}

// A restart takes the pending cuts over for replay: replaying one reuses its
// entry (and sequence number), a new cut after them continues the sequence.
func TestJournalRestoreAndReplay(t *testing.T) {
	r := newJournalRig(t)
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	r.cut(1, false)
	r.cut(2, false)

	r.j = r.open()
	r.j.restore(r.disk())
	if n := r.j.pendingCuts.Load(); n != 2 {
		t.Fatalf("pending_cuts %d after restore, want 2", n)
	}
	var seqs []uint64
	for c, ok := r.j.nextReplay(); ok; c, ok = r.j.nextReplay() {
		seq, err := r.j.cut(&c, c.ClosedUpTo, noFiles, snapN(int(c.Seq)), false)
		if err != nil || seq != c.Seq {
			t.Fatalf("replaying cut %d: seq %d, %v", c.Seq, seq, err)
		}
		seqs = append(seqs, seq)
	}
	if fmt.Sprint(seqs) != "[1 2]" || len(r.j.pending) != 2 {
		t.Fatalf("replayed %v, %d pending; want [1 2] and the same two pending", seqs, len(r.j.pending))
	}
	if seq := r.cut(9, false); seq != 3 {
		t.Fatalf("the cut after the replay has seq %d, want 3", seq)
	}
}

// While a sink is slow the snapshots held are thinned; commits still go in
// order and end at the newest.
func TestJournalThinsSnapshots(t *testing.T) {
	r := newJournalRig(t)
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := 1; i <= 3*maxPendingSnaps; i++ {
		seqs = append(seqs, r.cut(i, false))
	}
	held := 0
	for _, p := range r.j.pending {
		if p.snap != nil {
			held++
		}
	}
	if held > maxPendingSnaps+1 {
		t.Fatalf("%d snapshots held for %d cuts, bound %d", held, len(r.j.pending), maxPendingSnaps+1)
	}
	for _, s := range seqs {
		r.j.done(s)
	}
	if cf := r.disk(); string(cf.Snapshot) != string(snapN(3*maxPendingSnaps)) || len(cf.Pending) != 0 {
		t.Fatalf("after every Done: snapshot %s, %d pending", cf.Snapshot, len(cf.Pending))
	}
}

// One batch never confirmed: the confirmed runs behind it fold into a jump,
// the journal stays within maxPending, the stuck batch is logged once, and
// its late Done commits everything.
func TestJournalFoldsBehindAStuckBatch(t *testing.T) {
	r := newJournalRig(t)
	r.j.maxPending = 5
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	stuck := r.cut(1, false)
	for i := 2; i <= 40; i++ {
		r.now = r.now.Add(10 * time.Second)
		r.j.done(r.cut(i, false))
		if n := len(r.j.pending); n > r.j.maxPending {
			t.Fatalf("cut %d: %d pending, bound %d", i, n, r.j.maxPending)
		}
	}
	cf := r.disk()
	if cf.Seq != 0 || cf.Pending[0].Seq != stuck || cf.Pending[0].Snapshot != nil {
		t.Fatalf("on disk: seq %d, first pending %+v; want the stuck cut first", cf.Seq, cf.Pending[0])
	}
	jumps := 0
	for _, c := range cf.Pending[1:] {
		if c.Snapshot != nil {
			jumps++
		}
	}
	if jumps != 1 {
		t.Fatalf("%d jumps behind the stuck cut, want 1: %+v", jumps, cf.Pending)
	}
	if n := r.log.Count(stuckMsg); n != 1 {
		t.Fatalf("stuck batch logged %d times, want once", n)
	}
	if n := r.j.pendingCuts.Load(); n != 1 {
		t.Fatalf("pending_cuts %d, want 1", n)
	}
	r.j.done(stuck)
	if cf := r.disk(); string(cf.Snapshot) != string(snapN(40)) || len(cf.Pending) != 0 {
		t.Fatalf("after the late Done: snapshot %s, %d pending", cf.Snapshot, len(cf.Pending))
	}

	// A restart from a journal holding a jump: replaying it commits it.
	r2 := newJournalRig(t)
	r2.j.maxPending = 5
	if err := r2.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	s := r2.cut(1, false)
	for i := 2; i <= 10; i++ {
		r2.j.done(r2.cut(i, false))
	}
	r2.j = r2.open()
	r2.j.restore(r2.disk())
	r2.j.done(s) // the stuck batch, emitted again and confirmed
	for c, ok := r2.j.nextReplay(); ok; c, ok = r2.j.nextReplay() {
		if c.Snapshot != nil {
			if err := r2.j.jumped(c); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if cf := r2.disk(); cf.Seq < s+1 || cf.Snapshot == nil {
		t.Fatalf("after replaying the jump: committed seq %d", cf.Seq)
	}
}

func TestJournalCommitIfIdle(t *testing.T) {
	r := newJournalRig(t)
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	seq := r.cut(1, false)
	called := false
	snap := func() ([]byte, error) { called = true; return snapN(7), nil }
	if err := r.j.commitIfIdle(snap); err != nil || called {
		t.Fatalf("with a batch out: err %v, snapshot taken %v", err, called)
	}
	r.j.done(seq)
	if err := r.j.commitIfIdle(snap); err != nil || !called {
		t.Fatalf("idle: err %v, snapshot taken %v", err, called)
	}
	if cf := r.disk(); string(cf.Snapshot) != string(snapN(7)) {
		t.Fatalf("snapshot %s after the idle commit", cf.Snapshot)
	}
}

// A checkpoint that cannot be written is counted and reported; the Done
// that failed to write it is logged, rate-limited.
func TestJournalWriteFailure(t *testing.T) {
	r := newJournalRig(t)
	if err := r.j.commit(snapN(0)); err != nil {
		t.Fatal(err)
	}
	seq := r.cut(1, false)
	r.j.dir = filepath.Join(r.dir, "not-a-dir")
	if err := os.WriteFile(r.j.dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.j.cut(nil, 20, noFiles, snapN(2), false); err == nil {
		t.Fatal("no error from a cut whose checkpoint cannot be written")
	}
	r.j.done(seq)
	if n := r.j.checkpointErrors.Load(); n != 2 {
		t.Fatalf("checkpoint_errors %d, want 2", n)
	}
	if n := r.log.Count("WARN accounting checkpoint write failed"); n != 1 {
		t.Fatalf("write failure logged %d times, want 1", n)
	}
}

// checkpointParts are the very bytes json.Marshal writes, with a jump
// (a snapshot inside a pending cut) and without.
func TestAppendCheckpointIsJSONMarshal(t *testing.T) {
	snap := json.RawMessage(`{"files":[{"fp":"AAE=","path":"/l/a.csv","offset":12}],"agg":{"closed_up_to":10,"closed_set":true}}`)
	for _, cf := range []checkpointFile{
		{Version: checkpointVersion, Seq: 3, Snapshot: snap},
		{Version: checkpointVersion, Seq: 7, Snapshot: snap, TimesChecked: true, Pending: []cut{
			{Seq: 8, ClosedUpTo: 20, Files: []cutFile{{FPLen: 2, FPSum: "ab", Offset: 99}}},
			{Seq: 9, ClosedUpTo: 30, Snapshot: snap},
		}},
	} {
		want, err := json.Marshal(cf)
		if err != nil {
			t.Fatal(err)
		}
		buf, n, err := checkpointParts([]byte("junk"), &cf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]) + string(cf.Snapshot) + string(buf[n:]); got != string(want) {
			t.Errorf("appendCheckpoint:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
}
