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

	"github.com/pmta-agent/pmta-agent/agent/transport"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/pmta-agent/pmta-agent/agent"
)

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
//     sending the same points again cannot succeed. When the server says
//     how many points it refused ("… dropped=N", InfluxDB 1.8 and 2.x),
//     Rejected is N: with 1.8's partial write the others were stored, and
//     when N is every point of the request the delivery loop need not split
//     it to find the bad ones;
//   - 401 and 403: Retryable, because fixing the token is an operator's job
//     and data must not be thrown away meanwhile;
//   - 404 (bucket or database not found): Retryable, for the same reason;
//   - 413: TooLarge, so the batch is split;
//   - 429: Throttled, with Retry-After when given;
//   - 503: Throttled when Retry-After is given, else Retryable;
//   - other 4xx and 5xx, timeouts, refused connections and any error
//     without an HTTP answer: Retryable;
//   - a cancelled or expired context: Retryable, wrapping the context error.
func classify(err error) *agent.SinkError {
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
		return &agent.SinkError{Kind: agent.Permanent, Rejected: dropped(he),
			Err: fmt.Errorf("influx write: points rejected: %w", se)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: unauthorized: check the token: %w", se)}
	case code == http.StatusNotFound:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf(
			"influx write: bucket not found: check bucket and org (InfluxDB 1.8: the database must exist): %w", se)}
	case code == http.StatusRequestEntityTooLarge:
		return &agent.SinkError{Kind: agent.TooLarge, Err: fmt.Errorf("influx write: request too large: %w", se)}
	case code == http.StatusTooManyRequests:
		return &agent.SinkError{Kind: agent.Throttled,
			RetryAfter: transport.ParseRetryAfter(he.Header.Get("Retry-After"), time.Now(), maxRetryAfter),
			Err:        fmt.Errorf("influx write: throttled: %w", se)}
	case code == http.StatusServiceUnavailable:
		if d := transport.ParseRetryAfter(he.Header.Get("Retry-After"), time.Now(), maxRetryAfter); d > 0 {
			return &agent.SinkError{Kind: agent.Throttled, RetryAfter: d, Err: fmt.Errorf("influx write: unavailable: %w", se)}
		}
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: unavailable: %w", se)}
	default:
		return &agent.SinkError{Kind: agent.Retryable, Err: fmt.Errorf("influx write: %w", se)}
	}
}

// dropped reads how many points the server said it refused: the N of the
// last "dropped=N" in its error text (tsdb.PartialWriteError's wording, which
// InfluxDB 1.8 and 2.x share), or 0 when it did not say. The texts are read
// before serverMessage shortens them, since the count comes last: 1.8 puts
// its whole error in X-Influxdb-Error, 2.x in the JSON message.
func dropped(he *ihttp.Error) int {
	for _, text := range []string{he.Header.Get("X-Influxdb-Error"), he.Message, he.Header.Get(errorBodyHeader)} {
		if n, ok := parseDropped(text); ok {
			return n
		}
	}
	return 0
}

// parseDropped finds the last "dropped=N" in text that starts a word.
func parseDropped(text string) (int, bool) {
	const key = "dropped="
	for end := len(text); end > 0; {
		i := strings.LastIndex(text[:end], key)
		if i < 0 {
			return 0, false
		}
		end = i
		if i > 0 && isWordByte(text[i-1]) {
			continue // "points_dropped=", not the count
		}
		digits := text[i+len(key):]
		n := 0
		for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
			n++
		}
		if v, err := strconv.Atoi(digits[:n]); err == nil && v >= 0 {
			return v, true
		}
	}
	return 0, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// classifyTransport handles failures without an HTTP answer.
func classifyTransport(err error) *agent.SinkError {
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
