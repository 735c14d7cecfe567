package influx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/pmta-agent/pmta-agent/agent"
)

// PartialWriteError reports how far a Write got. Of the points passed to
// Write, the first Written+Rejected are settled and must not be sent again:
// Written of them were accepted (or had no field line protocol can carry, so
// there was nothing to send), Rejected of them belong to chunks InfluxDB
// refused for good (with InfluxDB 1.8's "partial write" some points of such a
// chunk may still have been stored). The *agent.SinkError wrapping this error
// classifies the failure; it concerns the points after the settled ones, or,
// when all points are settled, says that some were rejected.
type PartialWriteError struct {
	Written  int
	Rejected int
	Err      error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("%v (after %d points written, %d rejected)", e.Err, e.Written, e.Rejected)
}

func (e *PartialWriteError) Unwrap() error { return e.Err }

// Settled returns the number of leading points that must not be sent again.
// It lets the delivery loop find the progress with errors.As and an interface
// { Settled() int }, without importing this package.
func (e *PartialWriteError) Settled() int { return e.Written + e.Rejected }

// withProgress wraps se's cause in a PartialWriteError when part of the batch
// was already dealt with; otherwise se is returned unchanged.
func withProgress(se *agent.SinkError, written, rejected int) *agent.SinkError {
	if written == 0 && rejected == 0 {
		return se
	}
	return &agent.SinkError{
		Kind:       se.Kind,
		RetryAfter: se.RetryAfter,
		Err:        &PartialWriteError{Written: written, Rejected: rejected, Err: se.Err},
	}
}

// statusError is an HTTP answer other than 2xx. It keeps only the status and
// the server's message, not the library's error, whose text can be a JSON
// decoding complaint instead of what the server said.
type statusError struct {
	Status  int
	Message string
}

func (e *statusError) Error() string {
	text := strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	if e.Message == "" {
		return "HTTP " + text
	}
	return "HTTP " + text + ": " + e.Message
}

// classify turns a write error from the client library into a
// *agent.SinkError, or returns nil for nil. It is the one place that decides
// what the delivery loop does after a failed write:
//
//   - 400 and 422 (bad line protocol, field type conflict, points beyond
//     the retention policy, InfluxDB 1.8's "partial write"): Permanent, as
//     sending the same points again cannot succeed;
//   - 401 and 403: Retryable, because fixing the token is an operator's job
//     and data must not be thrown away meanwhile;
//   - 404 (bucket or database not found): Retryable, for the same reason;
//   - 413: TooLarge, so the batch is split;
//   - 429: Throttled, with Retry-After when given;
//   - 503: Throttled when Retry-After is given, else Retryable;
//   - other 4xx and 5xx, timeouts, refused connections and any error
//     without an HTTP answer: Retryable;
//   - a cancelled or expired context: Retryable, wrapping the context error.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var he *ihttp.Error
	if !errors.As(err, &he) || he.StatusCode == 0 {
		return classifyTransport(err)
	}
	se := &statusError{Status: he.StatusCode, Message: serverMessage(he)}
	code := he.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusBadRequest || code == http.StatusUnprocessableEntity:
		return &agent.SinkError{Kind: agent.Permanent, Err: fmt.Errorf("influx write: points rejected: %w", se)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: unauthorized: check the token: %w", se)}
	case code == http.StatusNotFound:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf(
			"influx write: bucket not found: check bucket and org (InfluxDB 1.8: the database must exist): %w", se)}
	case code == http.StatusRequestEntityTooLarge:
		return &agent.SinkError{Kind: agent.TooLarge, Err: fmt.Errorf("influx write: request too large: %w", se)}
	case code == http.StatusTooManyRequests:
		return &agent.SinkError{Kind: agent.Throttled,
			RetryAfter: agent.ParseRetryAfter(he.Header.Get("Retry-After"), time.Now(), maxRetryAfter),
			Err:        fmt.Errorf("influx write: throttled: %w", se)}
	case code == http.StatusServiceUnavailable:
		if d := agent.ParseRetryAfter(he.Header.Get("Retry-After"), time.Now(), maxRetryAfter); d > 0 {
			return &agent.SinkError{Kind: agent.Throttled, RetryAfter: d, Err: fmt.Errorf("influx write: unavailable: %w", se)}
		}
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: unavailable: %w", se)}
	default:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: %w", se)}
	}
}

// classifyTransport handles failures without an HTTP answer.
func classifyTransport(err error) error {
	if errors.Is(err, context.Canceled) {
		// The caller gave up; say that, not the URL and transport detail.
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: %w", context.Canceled)}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: timed out: %w", err)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: %w", context.DeadlineExceeded)}
	}
	return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: %w", err)}
}

// maxMessage bounds the server text kept in an error, so that a proxy's HTML
// page or a long list of unparsable lines does not flood the logs.
const maxMessage = 300

// serverMessage picks the most useful text the server sent: the library's
// parse of the body (2.x JSON "message", or a plain-text body), else the body
// errorBodyTransport kept, else InfluxDB 1.x's X-Influxdb-Error header.
func serverMessage(he *ihttp.Error) string {
	msg := he.Message
	if msg == "" {
		msg = he.Header.Get(errorBodyHeader)
	}
	if msg == "" {
		msg = he.Header.Get("X-Influxdb-Error")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// maxRetryAfter caps the delay a server can ask for. Waiting longer is
// taken for a server's mistake: meanwhile the queue would fill and shed data.
const maxRetryAfter = time.Hour
