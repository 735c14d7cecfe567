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

// encodeError is an export the exporter could not encode into a request
// (proto marshalling failed on the client), so nothing was sent. The same
// points fail the same way every time. The mapping passes every string
// through agent.SafeTag so that this cannot happen; classify still makes it
// Permanent, so that a gap in the mapping costs the points concerned and
// not the sink.
type encodeError struct{ Err error }

func (e *encodeError) Error() string { return "cannot encode the request: " + e.Err.Error() }
func (e *encodeError) Unwrap() error { return e.Err }

// sizeLimitError is an export the exporter refused to send because the
// encoded request exceeds its size limit (64 MiB by default).
type sizeLimitError struct{ Err error }

func (e *sizeLimitError) Error() string { return e.Err.Error() }
func (e *sizeLimitError) Unwrap() error { return e.Err }

// partialSuccessError is a partial success the sink's hooks recorded (see
// response): the server took the request, and rejected Rejected data points
// of it for good (0 for a mere warning). Unread marks a 2xx answer that
// could not be read, which counts as accepted too.
type partialSuccessError struct {
	Rejected int64
	Message  string
	Unread   bool
}

func (e *partialSuccessError) Error() string {
	return fmt.Sprintf("collector rejected %d data points: %s", e.Rejected, e.Message)
}

// partialSuccess finds the partial-success report that the sink's hooks
// recorded, or nil.
func partialSuccess(err error) *partialSuccessError {
	var pe *partialSuccessError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// classify turns an error from Export into a *agent.SinkError, or nil for
// nil and for a partial success. It is the one place that decides what the
// delivery loop does after a failed export:
//
// Errors that can only repeat for the same points are Permanent, so that the
// delivery loop isolates the points concerned and dead-letters them instead
// of retrying for ever:
//   - the exporter could not encode the request (a proto marshal failure
//     before anything was sent: with OTLP/HTTP the protobuf error itself,
//     with gRPC codes.Internal "grpc: error while marshaling", checked
//     against the request; see encodeError);
//   - gRPC InvalidArgument and HTTP 400: the collector will never take
//     these points.
//
// A request over the exporter's size limit, gRPC ResourceExhausted "message
// larger than max" and HTTP 413 are TooLarge (split the batch).
//
// Everything else waits and tries again, since an unknown failure must never
// make us throw data away:
//   - gRPC ResourceExhausted: Throttled, with the RetryInfo delay when given;
//   - gRPC Unavailable with RetryInfo: Throttled with its delay; without:
//     Retryable;
//   - gRPC Unauthenticated, PermissionDenied and HTTP 401, 403: Retryable,
//     saying to check the headers (fixing credentials is an operator's job;
//     data must wait);
//   - gRPC Unimplemented: Retryable, saying the endpoint serves no OTLP
//     metrics; HTTP 404: Retryable, saying to check the URL path;
//   - HTTP 429: Throttled (Retry-After when given); 503: Throttled with
//     Retry-After, else Retryable;
//   - gRPC DeadlineExceeded, Aborted, Canceled, Internal (a server's) and
//     every other code, other HTTP 4xx and 5xx, timeouts, refused
//     connections, cancelled contexts and anything unrecognised: Retryable.
//
// A partial success is not a failure: the collector took the request and
// kept what it did not reject, so resending it would duplicate what it kept
// (delta sums counted twice), and what it rejected it would reject again.
// The export counts as written; Write counts the rejected data points in the
// rejected_data_points stat.
func classify(err error) *agent.SinkError {
	if err == nil {
		return nil
	}
	if partialSuccess(err) != nil {
		return nil
	}
	retryable := func(format string, a ...any) *agent.SinkError {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf(format, a...)}
	}
	var ee *encodeError
	if errors.As(err, &ee) {
		return &agent.SinkError{Kind: agent.Permanent, Err: fmt.Errorf("otlp export: points cannot be sent: %w", err)}
	}
	var le *sizeLimitError
	if errors.As(err, &le) {
		return &agent.SinkError{Kind: agent.TooLarge, Err: fmt.Errorf("otlp export: request too large: %w", err)}
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
