// Package deadletter keeps the points a sink refused for good, so that one
// bad point costs itself and nothing else, and an operator can see what it
// was and why.
//
// Each sink has one file, <dir>/<sink>.lp: line protocol, one point a line,
// each group of points preceded by a comment line with the time and the
// reason. A point line protocol cannot carry (no field, a time beyond what a
// nanosecond timestamp holds) is written as a comment describing it. When the
// file reaches its bound it becomes <sink>.lp.1 (replacing an older one) and
// a new file starts, so the two together hold at most twice the bound. Files
// are created 0600 in a 0700 directory, on the first refusal: an agent whose
// sinks refuse nothing (or a backfill run by another user) needs no
// directory for them.
package deadletter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// DefaultMaxBytes bounds one dead-letter file when the configuration does
// not say.
const DefaultMaxBytes = 16 << 20

// File is one sink's dead-letter file. It is safe for concurrent use.
type File struct {
	dir, path string
	maxBytes  int64
	now       func() time.Time

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

var _ agent.DeadLetters = (*File)(nil)

// Open returns the dead-letter file of sink in dir, bounded to maxBytes
// (DefaultMaxBytes when 0 or less). Nothing is created before Keep.
func Open(dir, sink string, maxBytes int64) *File {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &File{dir: dir, path: filepath.Join(dir, sink+".lp"), maxBytes: maxBytes, now: time.Now}
}

// Path is the file the points go to.
func (d *File) Path() string { return d.path }

func (d *File) open() error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("dead-letter directory: %w", err)
	}
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open dead-letter file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("open dead-letter file: %w", err)
	}
	d.f, d.size = f, fi.Size()
	return nil
}

// Keep appends points with the reason they were refused, and syncs the file:
// a point the sink refused exists nowhere else once the queue lets it go.
func (d *File) Keep(points []agent.Point, reason string) error {
	if len(points) == 0 {
		return nil
	}
	buf := Format(nil, d.now(), points, reason)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("dead-letter file is closed")
	}
	if d.f == nil {
		if err := d.open(); err != nil {
			return err
		}
	}
	if d.size > 0 && d.size+int64(len(buf)) > d.maxBytes {
		if err := d.rotate(); err != nil {
			return err
		}
	}
	n, err := d.f.Write(buf)
	d.size += int64(n)
	if err == nil {
		err = d.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write dead-letter file %s: %w", d.path, err)
	}
	return nil
}

// rotate moves the full file to <path>.1 and starts a new one.
func (d *File) rotate() error {
	if err := d.f.Close(); err != nil {
		d.f = nil
		return fmt.Errorf("close dead-letter file: %w", err)
	}
	d.f = nil
	if err := os.Rename(d.path, d.path+".1"); err != nil {
		return fmt.Errorf("rotate dead-letter file: %w", err)
	}
	return d.open()
}

// Close closes the file. Keep fails afterwards.
func (d *File) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

// Format appends the dead-letter form of points to dst: a comment line with
// the time and the reason, then one line per point.
func Format(dst []byte, now time.Time, points []agent.Point, reason string) []byte {
	dst = append(dst, "# "...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, ' ')
	dst = append(dst, oneLine(reason)...)
	dst = append(dst, '\n')
	for i := range points {
		p := &points[i]
		n := len(dst)
		dst = agent.AppendLineProtocol(dst, p)
		if len(dst) == n {
			dst = append(dst, "# not line protocol ("...)
			dst = append(dst, agent.EncodeProblem(p)...)
			dst = append(dst, "): "...)
			dst = append(dst, oneLine(describe(p))...)
			dst = append(dst, '\n')
		}
	}
	return dst
}

// describe writes a point that line protocol cannot carry.
func describe(p *agent.Point) string {
	var b strings.Builder
	b.WriteString(agent.SafeTag(p.Measurement))
	b.WriteByte('{')
	for i, t := range p.Tags {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", agent.SafeTag(t.Key), agent.SafeTag(t.Value))
	}
	b.WriteString("} ")
	for i, f := range p.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%v", agent.SafeTag(f.Key), f.Value)
	}
	fmt.Fprintf(&b, " @ %d s", p.Time.Unix())
	return b.String()
}

// oneLine keeps a reason on its comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}
