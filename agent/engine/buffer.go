package engine

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/bytesize"
	"github.com/pmta-agent/pmta-agent/agent/deadletter"
	"github.com/pmta-agent/pmta-agent/agent/queue"
)

// BufferConfig is a sink's buffer section: where its points wait until it
// acknowledged them, and how its writes are retried.
type BufferConfig struct {
	// Type is "disk" (a durable queue under Dir) or "memory" (lost on exit).
	Type string `koanf:"type"`
	// Dir defaults to <state_dir>/queue/<sink>.
	Dir string `koanf:"dir"`
	// MaxBytes bounds a disk queue; beyond it the oldest points are dropped
	// and counted.
	MaxBytes bytesize.Size `koanf:"max_bytes"`
	// MaxPoints bounds a memory queue in the same way.
	MaxPoints int `koanf:"max_points"`
	// Sync is the disk queue's fsync policy: "always" (before a batch
	// counts as stored), "interval" (every SyncEvery) or "never" (leave it
	// to the OS). It decides how much a power cut can cost.
	Sync      string        `koanf:"sync"`
	SyncEvery time.Duration `koanf:"sync_every"`
	// MinBackoff and MaxBackoff bound the jittered exponential back-off
	// between failed writes.
	MinBackoff time.Duration `koanf:"min_backoff"`
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// DeadLetterMaxBytes bounds the file under <state_dir>/deadletter that
	// keeps the points the sink refuses for good (and its one older
	// generation); 0 keeps no file, the points are only counted.
	DeadLetterMaxBytes bytesize.Size `koanf:"dead_letter_max_bytes"`
}

// DiskBuffer is the default buffer of a sink whose data must survive a
// restart: a bounded, fsynced disk queue, and a dead-letter file.
func DiskBuffer() BufferConfig {
	return BufferConfig{
		Type: "disk", MaxBytes: 1 << 30, MaxPoints: 1_000_000, Sync: "interval", SyncEvery: time.Second,
		MinBackoff: time.Second, MaxBackoff: time.Minute, DeadLetterMaxBytes: 16 << 20,
	}
}

// MemoryBuffer is the default buffer of the stdout sink: it refuses
// nothing, and a backfill must not need the daemon's state directory, so
// it has no dead-letter file.
func MemoryBuffer() BufferConfig {
	b := DiskBuffer()
	b.Type, b.DeadLetterMaxBytes = "memory", 0
	return b
}

// Validate reports every problem of the buffer, each starting with its key
// relative to the buffer section; stateDir is where the agent keeps state.
// That a dead-letter file needs state_dir is the configuration's check:
// the key to fix is state_dir.
func (b BufferConfig) Validate(stateDir string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration such as 10s (is %s)", d)
		}
	}
	switch b.Type {
	case "disk":
		if b.Dir == "" && stateDir == "" {
			bad("dir", "must be set when state_dir is empty")
		}
		if b.MaxBytes < 1<<20 {
			bad("max_bytes", "(%s) must be at least 1MiB", b.MaxBytes)
		}
		switch b.Sync {
		case "always", "never":
		case "interval":
			positive("sync_every", b.SyncEvery)
		default:
			bad("sync", "is %q, want one of always, interval, never", b.Sync)
		}
	case "memory":
		if b.MaxPoints < 1 {
			bad("max_points", "must be at least 1")
		}
	default:
		bad("type", "is %q, want one of disk, memory", b.Type)
	}
	positive("min_backoff", b.MinBackoff)
	if b.MaxBackoff < b.MinBackoff {
		bad("max_backoff", "must not be below min_backoff")
	}
	if b.DeadLetterMaxBytes != 0 && b.DeadLetterMaxBytes < 64<<10 {
		bad("dead_letter_max_bytes", "(%s) must be 0 (no file) or at least 64KiB", b.DeadLetterMaxBytes)
	}
	return errs
}

// Output is one sink and its buffer, as the configuration asks for them.
// The Engine owns both from New on: it opens the buffer, and closes it and
// the sink.
type Output struct {
	Sink   agent.Sink
	Buffer BufferConfig
	// BatchSize is the most points one Write takes (agent.DefaultBatchSize
	// when 0).
	BatchSize int
	// InOrder: the sink's backend needs points in time order (OTLP
	// cumulative sums); no fresh-data-first.
	InOrder bool
}

// openOutput opens an output's store and dead-letter file and builds its
// delivery loop.
func openOutput(stateDir string, o Output, log *slog.Logger) (*Delivery, agent.Store, *deadletter.File, error) {
	name := o.Sink.Name()
	b := o.Buffer
	var st agent.Store
	if b.Type == "memory" {
		st = queue.NewMemory(b.MaxPoints)
	} else {
		dir := b.Dir
		if dir == "" {
			dir = filepath.Join(stateDir, "queue", name)
		}
		q, err := queue.Open(queue.Options{
			Dir: dir, MaxBytes: int64(b.MaxBytes), Sync: queue.SyncPolicy(b.Sync), SyncEvery: b.SyncEvery,
			Log: log.With("queue", name),
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s queue: %w", name, err)
		}
		st = q
	}
	dc := DeliveryConfig{BatchSize: o.BatchSize, MinBackoff: b.MinBackoff, MaxBackoff: b.MaxBackoff,
		Durable: b.Type == "disk", InOrder: o.InOrder}
	var dl *deadletter.File
	if b.DeadLetterMaxBytes > 0 {
		dl = deadletter.Open(filepath.Join(stateDir, "deadletter"), name, int64(b.DeadLetterMaxBytes))
		dc.DeadLetters = dl
	}
	return NewDelivery(o.Sink, st, dc, log), st, dl, nil
}
