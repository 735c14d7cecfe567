package poller

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// errEmptyBody is returned for a reply with nothing (or only white space) in it.
var errEmptyBody = errors.New("empty response body")

// sniff peeks at the start of a body and rejects what cannot be the document
// asked for: nothing at all, or an HTML page. PowerMTA answers a client that
// is not in http-access, and some proxies answer a missing login, with an
// HTML page and sometimes a 200 status, so the status code alone is not
// enough. want names the expected format for the message.
func sniff(r io.Reader, want string) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 1024)
	head, err := br.Peek(1024)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read body: %w", err)
	}
	n := len(head)
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 {
		if n == 1024 {
			// More than a buffer of white space: let the parser judge.
			return br, nil
		}
		return nil, errEmptyBody
	}
	// Drop the byte-order mark and leading white space so that callers can
	// peek at the first significant byte.
	if _, err := br.Discard(n - len(head)); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if looksLikeHTML(head) {
		return nil, fmt.Errorf("got an HTML page instead of %s (a login or \"access forbidden\" page?): %s", want, snippet(head))
	}
	return br, nil
}

// looksLikeHTML reports whether the start of a body is an HTML document.
func looksLikeHTML(head []byte) bool {
	lower := strings.ToLower(string(head))
	// Only marks that never open a PowerMTA XML reply: <title> does (the
	// queue listing), so it is not one of them.
	for _, mark := range []string{"<!doctype html", "<html", "<head>", "<head ", "<body"} {
		if strings.Contains(lower, mark) {
			return true
		}
	}
	return false
}

// snippet returns the readable start of a body for an error message: at most
// 80 characters on one line.
func snippet(b []byte) string {
	const limit = 80
	if len(b) > limit {
		b = b[:limit]
	}
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < ' ' || r == utf8.RuneError {
			return -1
		}
		return r
	}, string(b))
	return fmt.Sprintf("%q", strings.TrimSpace(s))
}

// jsonEnvelope is PowerMTA's JSON reply: {"data":…,"status":"success","message":""}.
type jsonEnvelope struct {
	Data    json.RawMessage `json:"data"`
	Status  *string         `json:"status"`
	Message string          `json:"message"`
}

// readJSONEnvelope decodes the envelope and returns data when PowerMTA
// reported success.
func readJSONEnvelope(r io.Reader) (json.RawMessage, error) {
	br, err := sniff(r, "JSON")
	if err != nil {
		return nil, err
	}
	if b, _ := br.Peek(1); len(b) == 1 && b[0] == '<' {
		return nil, fmt.Errorf("got markup (XML or HTML) instead of JSON: %s", snippet(b4(br)))
	}
	var env jsonEnvelope
	if err := decodeJSON(br, &env); err != nil {
		return nil, err
	}
	switch {
	case env.Status == nil:
		return nil, errors.New(`JSON reply has no "status" member: not a PowerMTA envelope`)
	case *env.Status != "success":
		msg := env.Message
		if msg == "" {
			msg = "no message"
		}
		return nil, fmt.Errorf("PowerMTA replied status %q: %s", *env.Status, msg)
	case len(env.Data) == 0 || string(env.Data) == "null":
		return nil, errors.New(`JSON reply has no "data" member`)
	}
	return env.Data, nil
}

// decodeJSON decodes exactly one JSON value from r into v; anything after it
// but white space is an error, so a concatenation of documents is refused.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("invalid JSON: truncated document: %w", err)
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: data after the document")
	}
	return nil
}

// newXMLDecoder returns a decoder for PowerMTA's XML that also reads the
// one-byte charsets older builds might declare.
func newXMLDecoder(r io.Reader) *xml.Decoder {
	dec := xml.NewDecoder(r)
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii", "windows-1252", "cp1252":
			// Windows-1252 differs from Latin-1 only in 0x80–0x9F, which
			// PowerMTA's numbers and names do not use.
			return &latin1Reader{r: bufio.NewReader(input)}, nil
		}
		return nil, fmt.Errorf("unsupported XML charset %q", charset)
	}
	return dec
}

// latin1Reader converts ISO-8859-1 bytes to UTF-8.
type latin1Reader struct {
	r       *bufio.Reader
	pending []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.pending) > 0 {
			c := copy(p[n:], l.pending)
			l.pending = l.pending[c:]
			n += c
			continue
		}
		b, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b < utf8.RuneSelf {
			p[n] = b
			n++
			continue
		}
		l.pending = utf8.AppendRune(l.pending[:0], rune(b))
	}
	return n, nil
}

// xmlEnvelope walks PowerMTA's <rsp><data>…</data><succ/></rsp> and calls
// onData with the decoder positioned just after <data>; onData must consume
// everything up to and including </data>. It returns an error when the root
// is not <rsp>, when <data> or <succ/> is missing, or when the XML is broken.
func xmlEnvelope(r io.Reader, onData func(dec *xml.Decoder, start xml.StartElement) error) error {
	br, err := sniff(r, "XML")
	if err != nil {
		return err
	}
	if b, _ := br.Peek(1); len(b) == 1 && (b[0] == '{' || b[0] == '[') {
		return errors.New("got JSON instead of XML (is format=json forced by a proxy?)")
	}
	dec := newXMLDecoder(br)
	root, err := firstElement(dec)
	if err != nil {
		return err
	}
	switch root.Name.Local {
	case "rsp":
	case "h1", "h2", "p", "pre", "title", "div", "center", "meta":
		return fmt.Errorf("got an HTML page instead of XML (a login or \"access forbidden\" page?): root <%s>", root.Name.Local)
	default:
		return fmt.Errorf("XML root is <%s>, want <rsp>: not a PowerMTA reply", root.Name.Local)
	}
	var sawData, sawSucc bool
	var errText string
	for {
		tok, err := dec.Token()
		if err != nil {
			return xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "data":
				if sawData {
					return errors.New("XML reply has more than one <data>")
				}
				sawData = true
				if err := onData(dec, t); err != nil {
					return err
				}
			case "succ":
				sawSucc = true
				if err := dec.Skip(); err != nil {
					return xmlErr(err)
				}
			default:
				// An error reply may say why in an element of its own;
				// keep its text for the message.
				var s string
				if err := dec.DecodeElement(&s, &t); err != nil {
					return xmlErr(err)
				}
				if s = strings.TrimSpace(s); s != "" && errText == "" {
					errText = t.Name.Local + ": " + s
				}
			}
		case xml.EndElement:
			// The end of <rsp>: the envelope is complete.
			if !sawSucc {
				if errText != "" {
					return fmt.Errorf("XML reply has no <succ/>, PowerMTA did not report success (%s)", errText)
				}
				return errors.New("XML reply has no <succ/>: PowerMTA did not report success")
			}
			if !sawData {
				return errors.New("XML reply has no <data>")
			}
			return nil
		}
	}
}

// firstElement skips the prolog (declaration, comments, white space) and
// returns the root element.
func firstElement(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, fmt.Errorf("invalid XML: text before the root element: %s", snippet(t))
			}
		}
	}
}

// b4 returns what is buffered at the start of br, for error messages.
func b4(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

func xmlErr(err error) error {
	var syn *xml.SyntaxError
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &syn) && syn.Msg == "unexpected EOF") {
		return fmt.Errorf("invalid XML: truncated document: %w", err)
	}
	return fmt.Errorf("invalid XML: %w", err)
}
