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

// readJSONEnvelope walks PowerMTA's JSON reply,
// {"data":…,"status":"success","message":""}, member by member and in
// whatever order they come. onData is called with the first token of data
// and must consume the rest of that value; a data value of the wrong shape
// is the caller's to note and report after a nil return, since it only
// matters once the envelope has said success ({"data":"","status":"error"}
// is an error reply, not a malformed one).
func readJSONEnvelope(r io.Reader, onData func(s *jsonStream, first json.Token) error) error {
	br, err := sniff(r, "JSON")
	if err != nil {
		return err
	}
	if b, _ := br.Peek(1); len(b) == 1 && b[0] == '<' {
		return fmt.Errorf("got markup (XML or HTML) instead of JSON: %s", snippet(b4(br)))
	}
	s := newJSONStream(br)
	first, err := s.token()
	if err != nil {
		return err
	}
	var (
		status   *string
		message  string
		haveData bool
		typeErr  error // a member of the wrong type: the reply is not an envelope
	)
	switch first {
	case nil: // null: an envelope with nothing in it
	case json.Delim('{'):
		err = s.members(func(name string) error {
			switch {
			case strings.EqualFold(name, "data"):
				tok, err := s.token()
				if err != nil {
					return err
				}
				if haveData = tok != nil; !haveData {
					return nil
				}
				return onData(s, tok)
			case strings.EqualFold(name, "status"):
				v, err := s.envelopeString(name, &typeErr)
				status = v
				return err
			case strings.EqualFold(name, "message"):
				v, err := s.envelopeString(name, &typeErr)
				message = ""
				if v != nil {
					message = *v
				}
				return err
			}
			return s.skipValue()
		})
	default:
		typeErr = errors.New("invalid JSON: the reply is not an object: not a PowerMTA envelope")
		err = s.skip(first)
	}
	if err != nil {
		return err
	}
	if err := s.end(); err != nil {
		return err
	}
	switch {
	case typeErr != nil:
		return typeErr
	case status == nil:
		return errors.New(`JSON reply has no "status" member: not a PowerMTA envelope`)
	case *status != "success":
		msg := message
		if msg == "" {
			msg = "no message"
		}
		return fmt.Errorf("PowerMTA replied status %q: %s", *status, msg)
	case !haveData:
		return errors.New(`JSON reply has no "data" member`)
	}
	return nil
}

// envelopeString reads the value of the envelope's status or message: a
// string, or null (nil). Anything else is noted in typeErr (the first one
// found wins) and consumed.
func (s *jsonStream) envelopeString(name string, typeErr *error) (*string, error) {
	tok, err := s.token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case nil:
		return nil, nil
	case string:
		return &v, nil
	}
	if *typeErr == nil {
		*typeErr = fmt.Errorf("invalid JSON: the envelope's %q is not a string: not a PowerMTA envelope", name)
	}
	return nil, s.skip(tok)
}

// newXMLDecoder returns a decoder for PowerMTA's XML that also reads the
// one-byte charsets older builds might declare, and that refuses elements
// nested more than maxDepth deep: xml.Decoder keeps a stack entry for each
// open element, and Skip and DecodeElement walk any depth.
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
	return xml.NewTokenDecoder(&xmlDepthLimit{dec: dec})
}

// maxDepth bounds the nesting of XML elements. xml.Decoder keeps a stack
// entry for each open element, and Skip and DecodeElement walk any depth, so
// a reply of nothing but opening tags would otherwise cost some 60 bytes of
// memory per byte. PowerMTA's documents are less than ten levels deep.
const maxDepth = 1000

var errTooDeep = fmt.Errorf("elements nested more than %d deep: not a PowerMTA reply", maxDepth)

// xmlDepthLimit passes tokens on while fewer than maxDepth elements are open.
// The inner decoder checks that elements match and reports errors with line
// numbers; the outer one (xml.NewTokenDecoder) sees the same tokens.
type xmlDepthLimit struct {
	dec   *xml.Decoder
	depth int
}

func (l *xmlDepthLimit) Token() (xml.Token, error) {
	tok, err := l.dec.Token()
	switch tok.(type) {
	case xml.StartElement:
		if l.depth++; l.depth > maxDepth {
			return nil, errTooDeep
		}
	case xml.EndElement:
		l.depth--
	}
	return tok, err
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
				// keep the start of its text for the message.
				s, err := elementText(dec, 256)
				if err != nil {
					return err
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

// elementText consumes the element whose start was just read and returns
// at most limit bytes of its own text (that of nested elements is left out,
// as DecodeElement into a string does).
func elementText(dec *xml.Decoder, limit int) (string, error) {
	var text []byte
	for depth := 1; ; {
		tok, err := dec.Token()
		if err != nil {
			return "", xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				return string(text), nil
			}
		case xml.CharData:
			if depth == 1 {
				text = append(text, t[:min(len(t), limit-len(text))]...)
			}
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
