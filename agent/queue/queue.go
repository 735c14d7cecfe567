package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/statefile"

	"github.com/pmta-agent/pmta-agent/agent"
)

// SyncPolicy says when appended data is forced to stable storage, and so when
// Append's durable callback is called.
type SyncPolicy string

const (
	// SyncAlways fsyncs every entry before durable is called (and before
	// Append returns). A power cut loses nothing that was confirmed.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs every SyncEvery; durable is called after the
	// fsync that covered the entry. A power cut can lose up to SyncEvery of
	// data, none of it confirmed.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves flushing to the OS; durable is called as soon as the
	// write reached the OS. A process crash loses nothing; a power cut may
	// lose what the OS had not written (typically up to 30 s), confirmed or
	// not.
	SyncNever SyncPolicy = "never"
)

// The queue's files hold a sink's pending points (domains, source IPs,
// volumes): only the agent's own user may read them, whatever the umask. The
// modes apply when the queue creates a file or a directory; a directory that
// exists already keeps the mode its operator gave it.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// Options configures a queue. Zero values take the defaults.
type Options struct {
	// Dir is the queue's own directory (one per sink); created (mode 0700,
	// with its missing parents) if missing.
	Dir string
	// MaxBytes bounds the segment files on disk; default 1 GiB. Beyond it
	// the oldest entries are dropped, acknowledged or not.
	MaxBytes int64
	// Sync is the sync policy; default SyncInterval.
	Sync SyncPolicy
	// SyncEvery is the fsync period of SyncInterval, and how often the
	// acknowledged position is saved; default 1 s.
	SyncEvery time.Duration
	// SegmentBytes is the size at which a new segment file is started;
	// default 16 MiB, kept between MaxBytes/256 and MaxBytes/8 (and between
	// 4 KiB and 1 GiB) so that the bound drops at most an eighth of the
	// queue at once and the queue never holds more than a few hundred open
	// files.
	SegmentBytes int64
	// Log receives recovery, overflow and disk-error reports; nil discards.
	Log *slog.Logger
}

// ErrClosed is returned by Append and Ack after Close.
var ErrClosed = errors.New("queue is closed")

// Queue is a durable, bounded, acknowledgement-based FIFO of point batches in
// one directory. See the package comment for the format and guarantees.
type Queue struct {
	opt  Options
	log  *slog.Logger
	lock *statefile.DirLock
	// writeAt writes segment bytes; tests replace it to simulate a full disk.
	writeAt func(f *os.File, b []byte, off int64) (int, error)
	bufs    sync.Pool // *[]byte record buffers

	syncMu sync.Mutex // serialises syncOnce, saveMeta and Close's flush
	mu     sync.Mutex // guards everything below
	segs   []*segment // by base; the last one takes appends
	closed bool

	nextSeq    uint64
	savedFront uint64 // acknowledged front last written to the meta file
	savedNext  uint64 // next seq last written to the meta file
	live       int    // unacknowledged entries
	livePoints int
	liveBytes  int64
	diskBytes  int64 // sum of segment file sizes: what MaxBytes bounds

	waiters      []waiter // durable callbacks waiting for an fsync, by seq
	dropped      []waiter // callbacks of entries the bound dropped, to call outside mu
	syncFailing  bool
	writeFailing bool
	overflow     bool // inside an overflow episode
	episodeDrop  int64
	recent       cached // the last appended entry
	lastRead     cached // the last entry decoded from disk

	droppedPoints, droppedEntries int64
	droppedFirst, droppedLast     int64 // unix seconds; 0 = none yet
	quarantined                   int64
	syncErrors, writeErrors       int64
	readErrors                    int64

	notify chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

type waiter struct {
	seq uint64
	fn  func()
}

// cached lets the delivery loop's usual Oldest-then-Newest pick, and a retry
// of the same entry, skip a disk read. It holds at most one entry each.
type cached struct {
	seq    uint64
	points []agent.Point
}

var (
	_ agent.Store         = (*Queue)(nil)
	_ agent.StatsReporter = (*Queue)(nil)
)

const (
	defaultMaxBytes     = 1 << 30
	defaultSegmentBytes = 16 << 20
	minSegmentBytes     = 4 << 10
	maxSegmentBytes     = 1 << 30 // keeps record offsets within uint32
	quarantineDir       = "quarantine"
)

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("queue: no directory given")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.Sync == "" {
		o.Sync = SyncInterval
	}
	switch o.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return fmt.Errorf("queue: unknown sync policy %q (want always, interval or never)", o.Sync)
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = time.Second
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	o.SegmentBytes = min(max(min(o.SegmentBytes, o.MaxBytes/8), o.MaxBytes/256, minSegmentBytes), maxSegmentBytes)
	if o.MaxBytes < 2*o.SegmentBytes {
		return fmt.Errorf("queue: max bytes %d too small (at least %d)", o.MaxBytes, 2*o.SegmentBytes)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Open opens (creating if needed) the queue in o.Dir, recovering what a crash
// left: a torn last record is cut off, damaged segments are moved to
// Dir/quarantine/ with their intact records kept, unknown files are ignored.
// It fails only when the directory cannot be used at all or another process
// holds it.
func Open(o Options) (*Queue, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, dirPerm); err != nil {
		return nil, fmt.Errorf("create queue directory: %w", err)
	}
	lock, err := statefile.LockDir(o.Dir, "queue")
	if err != nil {
		return nil, err
	}
	q := &Queue{
		opt:     o,
		log:     o.Log.With("queue_dir", o.Dir), // the caller may name the queue ("queue")
		lock:    lock,
		writeAt: (*os.File).WriteAt,
		notify:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := q.load(); err != nil {
		q.closeFiles()
		lock.Release()
		return nil, fmt.Errorf("open queue %s: %w", o.Dir, err)
	}
	go q.run()
	return q, nil
}

// Close stops the background syncing, fsyncs what was written (calling the
// durable callbacks it covers), saves the acknowledged position, closes the
// files and releases the directory lock. A second Close does nothing.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	<-q.done

	err := q.flush(true)
	if merr := q.saveMeta(); merr != nil {
		err = errors.Join(err, merr)
	}
	q.mu.Lock()
	q.closeFiles()
	q.mu.Unlock()
	if lerr := q.lock.Release(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	return err
}

func (q *Queue) closeFiles() {
	for _, s := range q.segs {
		if s.f != nil {
			s.f.Close()
		}
	}
}

// Notify is signalled, without blocking, after every Append.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Pending returns the unacknowledged entries, their points and their bytes
// on disk (record headers included).
func (q *Queue) Pending() (entries, points int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live, q.livePoints, q.liveBytes
}

// Component names the queue in the agent's self-metrics.
func (q *Queue) Component() string { return "queue_" + filepath.Base(q.opt.Dir) }

// Stats reports the queue's size and what it lost: bytes is the size of the
// segment files (what MaxBytes bounds), entries and points what waits;
// dropped_* count what the bound dropped (plus entries unreadable after
// open), dropped_first_unix and dropped_last_unix the time range of the
// dropped points (0 while nothing was dropped).
func (q *Queue) Stats() []agent.Field {
	q.mu.Lock()
	defer q.mu.Unlock()
	return []agent.Field{
		{Key: "bytes", Value: q.diskBytes},
		{Key: "entries", Value: int64(q.live)},
		{Key: "points", Value: int64(q.livePoints)},
		{Key: "dropped_points", Value: q.droppedPoints},
		{Key: "dropped_entries", Value: q.droppedEntries},
		{Key: "dropped_first_unix", Value: q.droppedFirst},
		{Key: "dropped_last_unix", Value: q.droppedLast},
		{Key: "quarantined_files", Value: q.quarantined},
		{Key: "sync_errors", Value: q.syncErrors},
		{Key: "write_errors", Value: q.writeErrors},
		{Key: "read_errors", Value: q.readErrors},
	}
}
