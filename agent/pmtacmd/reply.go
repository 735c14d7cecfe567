package pmtacmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Reply is PowerMTA's answer to a command.
type Reply struct {
	// Sent is the command as sent, after Translate.
	Sent Command `json:"sent"`
	// OK is true when PowerMTA ran the command.
	OK bool `json:"ok"`
	// Status is the envelope's status, "success" when OK; the seed dialect
	// has none, so it is "success" or "error" by the HTTP status.
	Status string `json:"status"`
	// Message is the envelope's message, PowerMTA's one-line answer to an
	// action ("Queue(s) paused.") or its reason for refusing; in the seed
	// dialect, the reply when it is one line.
	Message string `json:"message"`
	// Data is the envelope's data as PowerMTA sent it: an object or array
	// for show commands, a string ("" for most actions, the CLI's text with
	// format=json-text). Empty in the seed dialect.
	Data json.RawMessage `json:"data,omitempty"`
	// Text is the seed dialect's plain-text reply.
	Text string `json:"text,omitempty"`
}

// Printable returns the reply as a person reads it: the message on its own
// line, then the data — a string as text (the CLI's output with
// format=json-text), an object or array as indented JSON; or the seed
// dialect's text. "" when there is nothing to say. No control or format
// character other than newline and tab is left, so that a stranger's reply
// cannot drive a terminal; the result ends with a newline unless empty.
func (r Reply) Printable() string {
	var out strings.Builder
	if r.Text != "" { // the seed dialect: Message, if any, is the same line
		out.WriteString(textOnly(r.Text))
	} else if r.Message != "" {
		out.WriteString(textOnly(r.Message))
		out.WriteByte('\n')
	}
	switch data := bytes.TrimSpace(r.Data); {
	case len(data) == 0 || string(data) == `""` || string(data) == "null":
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			s = string(data)
		}
		out.WriteString(textOnly(s))
	default:
		var ind bytes.Buffer
		if err := json.Indent(&ind, data, "", "  "); err != nil {
			out.WriteString(textOnly(string(data)))
		} else {
			out.WriteString(textOnly(ind.String())) // JSON escapes controls already; \u202e is not escaped
		}
	}
	s := out.String()
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// textOnly keeps lines and tabs of a stranger's text and makes every other
// control or format character a space (a carriage return goes).
func textOnly(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\r':
			return -1
		case forbidden(r):
			return ' '
		}
		return r
	}, s)
}

// RefusedError is PowerMTA declining a command it received: an envelope
// whose status is not "success" (or, in the seed dialect, a 400 or 422 with
// its reason in the body). Message is PowerMTA's reason.
type RefusedError struct {
	Command Command
	Status  string
	Message string
}

func (e *RefusedError) Error() string {
	msg := oneLine(e.Message)
	if msg == "" {
		msg = fmt.Sprintf("status %q without a message", oneLine(e.Status))
	}
	return fmt.Sprintf("PowerMTA refused %q: %s", e.Command.String(), msg)
}

// HTTPError is an HTTP answer that is no reply to the command: a 403 (this
// host may not run commands), a 404 (no command API at the URL), a 5xx.
// PowerMTA did not run the command, and did not say it refused it either.
type HTTPError struct {
	Code   int
	Status string // "403 Forbidden"
	Hint   string // what the code usually means here
	Body   string // the start of the body, on one line
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %s", e.Status)
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, " (reply: %s)", e.Body)
	}
	return b.String()
}

// hint says what an HTTP status means for a command.
func hint(code int) string {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "PowerMTA did not let this host run commands: it needs the X-API-Key of an http-api-key line (api.api_key) or operator level for this host in http-access"
	case code == http.StatusNotFound || code == http.StatusMethodNotAllowed:
		return "no command API at this URL: is api.url PowerMTA's web monitor (http-mgmt-port), and api.dialect right?"
	case code == http.StatusRequestEntityTooLarge:
		return "the command is too large for the server"
	case code >= 500:
		return "PowerMTA, or a proxy in front of it, failed"
	}
	return ""
}

// envelope is PowerMTA's JSON reply: {"data": …, "status": "success",
// "message": "…"}.
type envelope struct {
	Data    json.RawMessage `json:"data"`
	Status  *string         `json:"status"`
	Message string          `json:"message"`
}

// parsePMTAReply reads real PowerMTA's answer to POST /command. A 2xx (or a
// 400/422, an answer about the command) whose body is the envelope decides
// by its status; any other status is an *HTTPError, and a body that is not
// the envelope an error of its own.
func parsePMTAReply(sent Command, code int, status string, body []byte) (Reply, error) {
	r := Reply{Sent: sent}
	aboutCommand := code/100 == 2 || code == http.StatusBadRequest || code == http.StatusUnprocessableEntity
	var env envelope
	err := json.Unmarshal(body, &env)
	if err != nil || env.Status == nil || !aboutCommand {
		if !aboutCommand {
			return r, &HTTPError{Code: code, Status: status, Hint: hint(code), Body: snippet(body)}
		}
		if looksLikeHTML(body) {
			return r, fmt.Errorf("got an HTML page instead of PowerMTA's JSON reply (a login or \"access forbidden\" page?): %s", snippet(body))
		}
		if err != nil {
			return r, fmt.Errorf("the reply is not PowerMTA's JSON envelope (%v): %s", err, snippet(body))
		}
		return r, fmt.Errorf("the reply has no status, so it is not PowerMTA's envelope: %s", snippet(body))
	}
	r.Status, r.Message, r.Data = *env.Status, env.Message, env.Data
	if bytes.Equal(bytes.TrimSpace(r.Data), []byte("null")) {
		r.Data = nil
	}
	if strings.EqualFold(r.Status, "success") {
		if code/100 != 2 {
			return r, &HTTPError{Code: code, Status: status, Hint: "a success envelope with an error status", Body: snippet(body)}
		}
		r.OK = true
		return r, nil
	}
	msg := r.Message
	if msg == "" {
		// Some error envelopes may carry the reason as data text.
		var s string
		if json.Unmarshal(r.Data, &s) == nil {
			msg = strings.TrimSpace(s)
		}
	}
	return r, &RefusedError{Command: sent, Status: r.Status, Message: msg}
}

// parseSeedReply reads the seed proxy's plain-text answer: 2xx ran it, a
// 400 or 422 is a refusal with the reason in the body ("error: …").
func parseSeedReply(sent Command, code int, status string, body []byte) (Reply, error) {
	r := Reply{Sent: sent, Text: string(body)}
	if !utf8.Valid(body) {
		r.Text = strings.ToValidUTF8(r.Text, "\uFFFD")
	}
	trimmed := strings.TrimSpace(r.Text)
	switch {
	case code/100 == 2:
		if looksLikeHTML(body) {
			return Reply{Sent: sent}, fmt.Errorf("got an HTML page instead of the proxy's text reply: %s", snippet(body))
		}
		r.OK, r.Status = true, "success"
		if !strings.ContainsAny(trimmed, "\r\n") {
			r.Message = trimmed
		}
		return r, nil
	case code == http.StatusBadRequest || code == http.StatusUnprocessableEntity:
		r.Status = "error"
		r.Message = strings.TrimSpace(strings.TrimPrefix(trimmed, "error:"))
		return r, &RefusedError{Command: sent, Status: r.Status, Message: r.Message}
	}
	return Reply{Sent: sent}, &HTTPError{Code: code, Status: status, Hint: hint(code), Body: snippet(body)}
}

// looksLikeHTML reports whether a body starts like an HTML document.
func looksLikeHTML(b []byte) bool {
	head := strings.ToLower(string(bytes.TrimSpace(b[:min(len(b), 512)])))
	return strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html") ||
		strings.Contains(head, "<body") || strings.Contains(head, "<head>")
}

// snippet returns the readable start of a body for an error message.
func snippet(b []byte) string {
	const limit = 120
	s := oneLine(string(b[:min(len(b), 4*limit)]))
	if len(s) > limit {
		return fmt.Sprintf("%q…", truncate(s, limit))
	}
	return fmt.Sprintf("%q", s)
}

// oneLine makes a stranger's text safe for one line of a terminal or log:
// valid UTF-8, every control or format character a space, runs of blanks
// one, at most 1 KiB.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if forbidden(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.Join(strings.Fields(s), " "), 1024)
}

// truncate cuts s to at most n bytes at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
