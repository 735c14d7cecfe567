package agent

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind says what the delivery loop should do after a failed write.
type ErrorKind int

const (
	// Retryable: try the same points again after a back-off.
	Retryable ErrorKind = iota
	// Throttled: the sink asked us to slow down; wait RetryAfter (or a back-off).
	Throttled
	// TooLarge: the request was too big; split the batch and retry the halves.
	TooLarge
	// Permanent: the sink will never accept these points; drop and count them.
	Permanent
)

func (k ErrorKind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Throttled:
		return "throttled"
	case TooLarge:
		return "too large"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// SinkError is a classified write failure. Each sink turns its transport's
// errors into SinkErrors in one function, tested with a table.
type SinkError struct {
	Kind       ErrorKind
	RetryAfter time.Duration // for Throttled (and Retryable) when the sink said so
	// Rejected is, for Permanent, how many of the points the error concerns
	// are refused, when the server said so (InfluxDB's "partial write …
	// dropped=N") or the sink refused a point itself; 0 means unknown. When it equals the number
	// of points written, every one of them is refused and the delivery loop
	// need not split the batch to find the bad ones.
	Rejected int
	Err      error
}

func (e *SinkError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (%s, retry after %s)", e.Err, e.Kind, e.RetryAfter)
	}
	return fmt.Sprintf("%s (%s)", e.Err, e.Kind)
}

func (e *SinkError) Unwrap() error { return e.Err }

// Classify reads the kind and the requested delay out of a Write error.
// Errors that are not SinkErrors are retryable: an unknown failure must never
// make us throw data away.
func Classify(err error) (ErrorKind, time.Duration) {
	var se *SinkError
	if errors.As(err, &se) {
		return se.Kind, se.RetryAfter
	}
	return Retryable, 0
}

// PartialWriteError reports how far a Write got before it failed: the first
// Written points were accepted by the sink and must not be sent again. The
// *SinkError that wraps it classifies the failure of the points after them.
// Both sinks return it; the delivery loop finds it with errors.As.
type PartialWriteError struct {
	Written int
	Err     error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("%v (after %d points written)", e.Err, e.Written)
}

func (e *PartialWriteError) Unwrap() error { return e.Err }

// WithProgress returns se unchanged when written is 0, and otherwise a copy
// whose cause is wrapped in a PartialWriteError saying that the first
// written points were accepted.
func WithProgress(se *SinkError, written int) *SinkError {
	if written == 0 || se == nil {
		return se
	}
	out := *se
	out.Err = &PartialWriteError{Written: written, Err: se.Err}
	return &out
}

// Settled returns how many leading points a failed Write still delivered.
func Settled(err error) int {
	var pw *PartialWriteError
	if errors.As(err, &pw) {
		return pw.Written
	}
	return 0
}
