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
	Err        error
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
