package poller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// A reply is read as a stream of JSON tokens: the envelope, the data object
// and a listing's array are walked token by token, and only one listing
// entry (or one member of an object) is decoded at a time. What a reply
// costs in memory is then what the parser keeps, not the size of the reply.
// Only the levels the parsers know are walked with Token; below them
// json.Decoder's own depth limit (10000) applies, and its token stack stays
// a few entries deep.

// maxJSONValue bounds the one value held while it is decoded: a listing
// entry, a member of the status document, a string, an entry of something
// skipped. PowerMTA's largest, a queue with its last ten errors, is a few
// KiB. Without it a reply of one long string would be buffered, and
// buffered again as it grows, up to the byte cap.
const maxJSONValue = 1 << 20

var errJSONValueTooLarge = fmt.Errorf("a single JSON value is larger than %d bytes: not a PowerMTA reply", maxJSONValue)

// jsonStream walks one JSON document.
type jsonStream struct {
	dec *json.Decoder
}

func newJSONStream(r io.Reader) *jsonStream {
	var dec *json.Decoder
	// json.Decoder buffers the whole of the value (or token) it is
	// reading, and InputOffset is where that value starts.
	dec = json.NewDecoder(&valueLimit{r: r, max: maxJSONValue + 1, err: errJSONValueTooLarge,
		start: func() int64 { return dec.InputOffset() }})
	// Numbers walked over stay text: 1e999 is then not an error in a
	// member nobody reads.
	dec.UseNumber()
	return &jsonStream{dec: dec}
}

// jsonErr words a decoding error for the log; the end of the input inside a
// document is a truncation.
func jsonErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("invalid JSON: truncated document: %w", err)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// token reads the next token.
func (s *jsonStream) token() (json.Token, error) {
	tok, err := s.dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	return tok, nil
}

// members calls fn with the name of each member of the object whose '{'
// was just read, up to its '}'. fn must consume the member's value.
func (s *jsonStream) members(fn func(name string) error) error {
	for {
		tok, err := s.token()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok {
			return nil // '}': Token has checked that nothing else can come here
		}
		if err := fn(name); err != nil {
			return err
		}
	}
}

// skip consumes the rest of a value whose first token was first, one
// member or element at a time, so that a long array nobody reads costs no
// more than its largest element. Elements are decoded whole rather than
// walked token by token, which would cost an allocation per scalar
// (json.Decoder makes an error value to find where each one ends).
func (s *jsonStream) skip(first json.Token) error {
	switch first {
	case json.Delim('{'):
		return s.members(func(string) error { return s.discard() })
	case json.Delim('['):
		for s.dec.More() {
			if err := s.discard(); err != nil {
				return err
			}
		}
		_, err := s.token() // the closing ']'
		return err
	}
	return nil
}

// skipValue consumes the next value, which may be long: an unknown member.
func (s *jsonStream) skipValue() error {
	tok, err := s.token()
	if err != nil {
		return err
	}
	return s.skip(tok)
}

// discard consumes the next value whole, as one of at most maxJSONValue
// bytes: an element or member of something skipped, an entry not kept.
func (s *jsonStream) discard() error {
	return s.decode(&ignored{})
}

// ignored is decoded only to get past a value. Its JSON form is checked by
// the decoder all the same.
type ignored struct{}

func (*ignored) UnmarshalJSON([]byte) error { return nil }

// decode reads the next value into v. A value of the wrong type for v is
// consumed and returned as a *json.UnmarshalTypeError, which leaves the
// stream usable; any other error ends the document.
func (s *jsonStream) decode(v any) error {
	err := s.dec.Decode(v)
	if err == nil || isTypeError(err) {
		return err
	}
	return jsonErr(err)
}

func isTypeError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// decodeMembers decodes the rest of an object whose '{' was just read into
// the struct v points to, one member at a time: a member whose name matches
// a field's json tag (ignoring case, as encoding/json does) is decoded into
// that field, any other is skipped. A later duplicate wins, as with
// json.Unmarshal. Type errors do not stop it; the first is returned once the
// object is consumed.
func (s *jsonStream) decodeMembers(v any) error {
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	var typeErr error
	err := s.members(func(name string) error {
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || tag == "" || tag == "-" || !strings.EqualFold(tag, name) {
				continue
			}
			err := s.decode(rv.Field(i).Addr().Interface())
			if isTypeError(err) {
				if typeErr == nil {
					typeErr = err
				}
				return nil
			}
			return err
		}
		return s.skipValue()
	})
	if err != nil {
		return err
	}
	return typeErr
}

// end checks that nothing but white space follows the document, so that a
// concatenation of documents is refused.
func (s *jsonStream) end() error {
	if _, err := s.dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: data after the document")
	}
	return nil
}
