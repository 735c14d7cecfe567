package influx

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// errorBodyHeader carries the start of an error response's body from
// errorBodyTransport to classify, through the response headers, which the
// client library keeps in its error (ihttp.Error.Header).
const errorBodyHeader = "X-Pmta-Agent-Error-Body"

// errorBodyLimit is how much of an error body is kept.
const errorBodyLimit = 512

// errorBodyTransport copies the start of every non-2xx response body into a
// response header. The library reads the body itself and keeps only a JSON
// "message" (InfluxDB 2.x) or a non-JSON body; an error in another JSON shape,
// such as InfluxDB 3's {"error": ...}, would otherwise reach us with no text.
// The body is passed on unchanged.
type errorBodyTransport struct {
	base http.RoundTripper
}

func (t errorBodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.Body == nil {
		return resp, err
	}
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	if len(head) > 0 {
		// Header values cannot hold line breaks.
		text := strings.Join(strings.Fields(string(head)), " ")
		resp.Header.Set(errorBodyHeader, text)
	}
	rest := io.Reader(resp.Body)
	if readErr != nil {
		rest = errReader{readErr}
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rest), resp.Body}
	return resp, nil
}

// errReader replays a read error after the bytes that were read before it.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
