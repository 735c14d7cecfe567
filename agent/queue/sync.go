package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// run is the background loop: every SyncEvery it fsyncs (under
// SyncInterval, or to retry a failed fsync) and saves the acknowledged
// position.
func (q *Queue) run() {
	defer close(q.done)
	t := time.NewTicker(q.opt.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			q.syncOnce()
		}
	}
}

// syncOnce is one tick of the background loop.
func (q *Queue) syncOnce() {
	if err := q.flush(false); err != nil {
		return // counted and logged by flush
	}
	if err := q.saveMeta(); err != nil {
		q.log.Warn("cannot save the queue's acknowledged position", "err", err)
	}
}

// flush fsyncs the segments written since their last fsync and then calls
// the durable callbacks of every entry written before it started. Appends go
// on meanwhile: the lock is not held during the fsyncs. Under SyncNever it
// syncs only when all is true (Close).
func (q *Queue) flush(all bool) error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	q.mu.Lock()
	var targets []*segment
	if all || q.opt.Sync != SyncNever || len(q.waiters) > 0 {
		for _, s := range q.segs {
			if s.dirty {
				s.dirty = false
				targets = append(targets, s)
			}
		}
	}
	upto := q.nextSeq - 1
	q.mu.Unlock()

	var errs []error
	failed := make([]bool, len(targets))
	for i, s := range targets {
		if err := s.f.Sync(); err != nil {
			failed[i] = true
			errs = append(errs, err)
		}
	}

	q.mu.Lock()
	var syncErr error
	for i, s := range targets {
		// A segment deleted meanwhile (acknowledged or dropped) needs no
		// fsync: what it held is gone from the queue either way.
		if failed[i] && !s.dead {
			s.dirty = true
			syncErr = errs[i]
		}
	}
	var fire []waiter
	if syncErr != nil {
		q.noteSyncError(syncErr)
	} else {
		if q.syncFailing {
			q.syncFailing = false
			q.log.Info("queue fsyncs work again")
		}
		n := 0
		for n < len(q.waiters) && q.waiters[n].seq <= upto {
			n++
		}
		fire = q.waiters[:n:n]
		q.waiters = q.waiters[n:]
	}
	q.mu.Unlock()
	for _, w := range fire {
		w.fn()
	}
	if syncErr != nil {
		return fmt.Errorf("fsync queue segment: %w", syncErr)
	}
	return nil
}

// The meta file records the acknowledged front — every entry up to it is
// acknowledged — so that a restart does not replay the acknowledged part of
// the oldest segment, and the next sequence number as a floor for numbering.
// Entries acknowledged out of order behind an unacknowledged one are not
// recorded: they may be delivered again after a restart.
//
//	meta = magic:8 front:u64 next:u64 crc32c:u32
const (
	metaName  = "meta"
	metaMagic = "PMTAQMT1"
	metaSize  = 28
)

type meta struct {
	front, next uint64
}

// front returns the acknowledged front: the seq before the oldest
// unacknowledged entry.
func (q *Queue) front() uint64 {
	for _, s := range q.segs {
		for i := s.first; i < len(s.slots); i++ {
			if !s.slots[i].acked {
				return s.slots[i].seq - 1
			}
		}
	}
	return q.nextSeq - 1
}

// saveMeta writes the meta file when the front or the next sequence number
// moved: temporary file, fsync, rename, fsync of the directory. Saving the
// next number each tick keeps numbers from going back even when a power cut
// takes the newest records, except those given in the last SyncEvery.
func (q *Queue) saveMeta() error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	q.mu.Lock()
	m := meta{front: max(q.front(), q.savedFront), next: q.nextSeq}
	moved := m.front > q.savedFront || m.next > q.savedNext
	q.mu.Unlock()
	if !moved {
		return nil
	}
	b := make([]byte, 0, metaSize)
	b = append(b, metaMagic...)
	b = binary.LittleEndian.AppendUint64(b, m.front)
	b = binary.LittleEndian.AppendUint64(b, m.next)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	path := filepath.Join(q.opt.Dir, metaName)
	if err := statefile.WriteAtomic(path, b, filePerm); err != nil {
		return fmt.Errorf("save queue meta: %w", err)
	}
	q.mu.Lock()
	q.savedFront, q.savedNext = m.front, m.next
	q.mu.Unlock()
	return nil
}

// readMeta reads the meta file; a missing one is the zero meta, a damaged
// one is reported so that the caller can quarantine it.
func readMeta(dir string) (meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return meta{}, nil
	}
	if err != nil {
		return meta{}, err
	}
	if len(b) != metaSize || string(b[:8]) != metaMagic ||
		binary.LittleEndian.Uint32(b[24:]) != crc32.Checksum(b[:24], castagnoli) {
		return meta{}, fmt.Errorf("%w: meta file of %d bytes", ErrCorrupt, len(b))
	}
	return meta{front: binary.LittleEndian.Uint64(b[8:]), next: binary.LittleEndian.Uint64(b[16:])}, nil
}
