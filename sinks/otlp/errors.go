package otlp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pmta-agent/pmta-agent/agent"
)

// maxRetryAfter caps the delay a server can ask for. Waiting longer is taken
// for a server's mistake: meanwhile the queue would fill and shed data.
const maxRetryAfter = time.Hour

// httpStatusError is a non-2xx answer of an OTLP/HTTP endpoint. The HTTP
// exporter does not expose the status in its errors (it returns text, or an
// unexported type for 429/502/503/504), so the sink's transport records the
// response (see responseRecorder) and Write wraps the exporter's error in
// this type, which classify reads.
type httpStatusError struct {
	Status     int
	RetryAfter time.Duration
	Err        error // the exporter's error, with the body the server sent
}

func (e *httpStatusError) Error() string { return e.Err.Error() }
func (e *httpStatusError) Unwrap() error { return e.Err }

// PartialWriteError reports how far a Write got when its points went out in
// several exports (one per server). The first Written+Rejected points are
// settled and must not be sent again: Written were accepted, Rejected were
// refused for good. The *agent.SinkError wrapping it classifies the failure
// of the points after them.
type PartialWriteError struct {
	Written  int
	Rejected int
	Err      error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("%v (after %d points written, %d rejected)", e.Err, e.Written, e.Rejected)
}

func (e *PartialWriteError) Unwrap() error { return e.Err }

// Settled returns the number of leading points that must not be sent again;
// the delivery loop finds it with errors.As on interface{ Settled() int }.
func (e *PartialWriteError) Settled() int { return e.Written + e.Rejected }

// withProgress wraps se's cause in a PartialWriteError when part of the
// points was already dealt with.
func withProgress(se *agent.SinkError, written, rejected int) *agent.SinkError {
	if written == 0 && rejected == 0 {
		return se
	}
	return &agent.SinkError{Kind: se.Kind, RetryAfter: se.RetryAfter,
		Err: &PartialWriteError{Written: written, Rejected: rejected, Err: se.Err}}
}

// partialSuccessError is a partial success the sink's hooks recorded (see
// response): the server took the request, and rejected Rejected data points
// of it for good.
type partialSuccessError struct {
	Rejected int64
	Message  string
}

func (e *partialSuccessError) Error() string {
	return fmt.Sprintf("collector rejected %d data points: %s", e.Rejected, e.Message)
}

// partialSuccess finds the partial-success report that the sink's hooks
// recorded. The server took the request; rejected data points (if any) are
// refused for good.
func partialSuccess(err error) (rejected int64, msg string, ok bool) {
	var pe *partialSuccessError
	if errors.As(err, &pe) {
		return pe.Rejected, pe.Message, true
	}
	return 0, "", false
}

// classify turns an error from Export into a *agent.SinkError, or nil for
// nil and for a partial success that rejected nothing (a warning). It is the
// one place that decides what the delivery loop does after a failed export:
//
// OTLP/gRPC status codes:
//   - InvalidArgument: Permanent (the collector will never take these points);
//   - ResourceExhausted "message larger than max": TooLarge (split the batch);
//   - ResourceExhausted: Throttled, with the RetryInfo delay when given;
//   - Unavailable with RetryInfo: Throttled with its delay; without: Retryable;
//   - Unauthenticated, PermissionDenied: Retryable, saying to check the
//     headers (fixing credentials is an operator's job; data must wait);
//   - Unimplemented: Retryable, saying the endpoint serves no OTLP metrics;
//   - DeadlineExceeded, Aborted, Canceled, and every other code: Retryable.
//
// OTLP/HTTP statuses:
//   - 400: Permanent; 413: TooLarge;
//   - 429: Throttled (Retry-After when given); 503: Throttled with
//     Retry-After, else Retryable;
//   - 401, 403: Retryable, saying to check the headers; 404: Retryable,
//     saying to check the URL path;
//   - other 4xx and 5xx: Retryable.
//
// A partial success (the server kept part of the request) that rejected data
// points is Permanent: what was accepted must not be sent twice and what was
// rejected will be rejected again. Timeouts, refused connections, cancelled
// contexts and anything unrecognised: Retryable, since an unknown failure
// must never make us throw data away.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if rejected, msg, ok := partialSuccess(err); ok {
		if rejected == 0 {
			return nil
		}
		return &agent.SinkError{Kind: agent.Permanent,
			Err: fmt.Errorf("otlp export: collector rejected %d data points: %s", rejected, msg)}
	}
	retryable := func(format string, a ...any) error {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf(format, a...)}
	}

	var he *httpStatusError
	if errors.As(err, &he) {
		code := he.Status
		switch {
		case code == http.StatusBadRequest:
			return &agent.SinkError{Kind: agent.Permanent, Err: fmt.Errorf("otlp export: points rejected: %w", err)}
		case code == http.StatusRequestEntityTooLarge:
			return &agent.SinkError{Kind: agent.TooLarge, Err: fmt.Errorf("otlp export: request too large: %w", err)}
		case code == http.StatusTooManyRequests:
			return &agent.SinkError{Kind: agent.Throttled, RetryAfter: he.RetryAfter, Err: fmt.Errorf("otlp export: throttled: %w", err)}
		case code == http.StatusServiceUnavailable && he.RetryAfter > 0:
			return &agent.SinkError{Kind: agent.Throttled, RetryAfter: he.RetryAfter, Err: fmt.Errorf("otlp export: unavailable: %w", err)}
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return retryable("otlp export: not authorized: check the headers (authorization token): %w", err)
		case code == http.StatusNotFound:
			return retryable("otlp export: not found: check the endpoint URL and its path (/v1/metrics): %w", err)
		}
		return retryable("otlp export: %w", err)
	}

	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.InvalidArgument:
			return &agent.SinkError{Kind: agent.Permanent, Err: fmt.Errorf("otlp export: points rejected: %w", err)}
		case codes.ResourceExhausted:
			if strings.Contains(st.Message(), "larger than max") {
				return &agent.SinkError{Kind: agent.TooLarge, Err: fmt.Errorf("otlp export: request too large: %w", err)}
			}
			delay, _ := retryInfo(st)
			return &agent.SinkError{Kind: agent.Throttled, RetryAfter: delay, Err: fmt.Errorf("otlp export: throttled: %w", err)}
		case codes.Unavailable:
			if delay, ok := retryInfo(st); ok {
				return &agent.SinkError{Kind: agent.Throttled, RetryAfter: delay, Err: fmt.Errorf("otlp export: unavailable: %w", err)}
			}
			return retryable("otlp export: unavailable: %w", err)
		case codes.Unauthenticated, codes.PermissionDenied:
			return retryable("otlp export: not authorized: check the headers (authorization token): %w", err)
		case codes.Unimplemented:
			return retryable("otlp export: the endpoint serves no OTLP metrics (wrong port, or no metrics pipeline): %w", err)
		case codes.DeadlineExceeded:
			return retryable("otlp export: timed out: %w", err)
		}
		return retryable("otlp export: %w", err)
	}

	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return retryable("otlp export: %w", err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return retryable("otlp export: timed out: %w", err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return retryable("otlp export: connection refused: %w", err)
	}
	return retryable("otlp export: %w", err)
}

// retryInfo reads the delay of a google.rpc.RetryInfo detail, capped at
// maxRetryAfter.
func retryInfo(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay := ri.GetRetryDelay().AsDuration()
			return min(max(delay, 0), maxRetryAfter), true
		}
	}
	return 0, false
}
