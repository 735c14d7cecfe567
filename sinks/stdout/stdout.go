// Package stdout is a sink that prints points as InfluxDB line protocol to a
// writer, normally the process's standard output. It serves `pmta-agent once`,
// debugging, and pipelines that feed line protocol into another tool. Its
// only setting is Config.Enabled; its buffer is the config package's.
package stdout

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/pmta-agent/pmta-agent/agent"
)

// maxKeptBuffer bounds the encoding buffer kept between batches, so one huge
// batch (a backfill) does not pin its memory for the life of the process.
const maxKeptBuffer = 1 << 20

// Config is the sink's configuration: the sinks.stdout section of the
// configuration file, apart from the buffer subsection, which the config
// package puts next to it.
type Config struct {
	// Enabled turns the sink on; New does not read it.
	Enabled bool `koanf:"enabled"`
}

// DefaultConfig returns the sink's defaults: off.
func DefaultConfig() Config { return Config{} }

// Validate reports the problems of the settings: there are none to have.
// It exists so that the config package treats every sink alike.
func (c Config) Validate() []error { return nil }

// Sink writes each batch as line protocol, one point per line. It is safe for
// concurrent use: batches never interleave.
type Sink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

var _ agent.Sink = (*Sink)(nil)

// New returns a sink that writes to w.
func New(w io.Writer) *Sink {
	return &Sink{w: w}
}

// Name implements agent.Sink.
func (s *Sink) Name() string { return "stdout" }

// Write encodes the batch and hands it to the writer in one Write call, so a
// reader on a pipe sees whole lines and whole batches. A failed write is
// retryable: resending lines is harmless because every point has a
// deterministic time and tag set.
//
// Points that line protocol cannot carry (no measurement, no writable field,
// a time outside the nanosecond range; see agent.AppendLineProtocol and
// agent.EncodeProblem) are skipped silently and still count as written.
// Unlike the influx sink, which refuses such a point for good so that the
// delivery loop dead-letters it, this debugging sink does not report it.
func (s *Sink) Write(ctx context.Context, points []agent.Point) error {
	if err := ctx.Err(); err != nil {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("stdout write: %w", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	for i := range points {
		buf = agent.AppendLineProtocol(buf, &points[i])
	}
	if cap(buf) <= maxKeptBuffer {
		s.buf = buf
	} else {
		s.buf = nil
	}
	if len(buf) == 0 {
		return nil
	}
	if _, err := s.w.Write(buf); err != nil {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("stdout write: %w", err)}
	}
	return nil
}
