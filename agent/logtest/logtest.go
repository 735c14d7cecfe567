// Package logtest records what the agent logs, for the tests that check it:
// one slog.Handler that keeps every record with the attributes the logger
// added (With), instead of a copy of one in every package's tests.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Recorder keeps every record logged through its Logger. It is safe for
// concurrent use.
type Recorder struct {
	mu      sync.Mutex
	records []Record
}

// Record is one logged line: its level, message and attributes in order,
// those added with Logger.With first.
type Record struct {
	Level slog.Level
	Msg   string
	Attrs []slog.Attr
}

// Keys returns the keys of the record's attributes, in order.
func (r Record) Keys() []string {
	keys := make([]string, len(r.Attrs))
	for i, a := range r.Attrs {
		keys[i] = a.Key
	}
	return keys
}

// String is "LEVEL msg key=value …".
func (r Record) String() string {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Msg)
	for _, a := range r.Attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return b.String()
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{} }

// Logger returns a logger that records into r, at every level.
func (r *Recorder) Logger() *slog.Logger { return slog.New(&handler{rec: r}) }

// Records returns what was logged so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Take returns what was logged since the last Take (or the start).
func (r *Recorder) Take() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.records
	r.records = nil
	return out
}

// Count returns how many records contain s in their String form.
func (r *Recorder) Count(s string) int {
	n := 0
	for _, rec := range r.Records() {
		if strings.Contains(rec.String(), s) {
			n++
		}
	}
	return n
}

// String is every record's String, one a line.
func (r *Recorder) String() string {
	var b strings.Builder
	for _, rec := range r.Records() {
		b.WriteString(rec.String() + "\n")
	}
	return b.String()
}

type handler struct {
	rec   *Recorder
	attrs []slog.Attr
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	rec := Record{Level: r.Level, Msg: r.Message, Attrs: append([]slog.Attr(nil), h.attrs...)}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs = append(rec.Attrs, a)
		return true
	})
	h.rec.mu.Lock()
	h.rec.records = append(h.rec.records, rec)
	h.rec.mu.Unlock()
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{rec: h.rec, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

// WithGroup is not used by the agent; groups are flattened.
func (h *handler) WithGroup(string) slog.Handler { return h }
