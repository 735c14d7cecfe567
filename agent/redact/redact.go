package redact

import (
	"errors"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// redacted replaces each secret in scrubbed text.
const redacted = "[redacted]"

// Redactor removes secrets (tokens, passwords, credentials) from the text of
// errors before a caller or a log line sees them: a server or a proxy may
// echo the Authorization header in its answer. Which strings are secret is
// the sink's decision, including how short a secret may be before scrubbing
// it garbles every message while protecting nothing; the Redactor only
// replaces them. The zero Redactor removes nothing. A Redactor does not
// change after NewRedactor and is safe for concurrent use.
type Redactor struct {
	secrets []string
}

// NewRedactor returns a Redactor for the given secrets, replaced in this
// order (list a credential before a part of it). Empty strings are dropped:
// one would match between every two characters.
func New(secrets ...string) Redactor {
	var s []string
	for _, v := range secrets {
		if v != "" {
			s = append(s, v)
		}
	}
	return Redactor{secrets: s}
}

// Scrub returns text with every secret replaced by "[redacted]".
func (r Redactor) Scrub(text string) string {
	for _, v := range r.secrets {
		text = strings.ReplaceAll(text, v, redacted)
	}
	return text
}

func (r Redactor) contained(text string) bool {
	for _, v := range r.secrets {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// RedactError returns err with any secret removed from its text. Only an
// error that holds a secret loses its chain, to a plain error with the
// scrubbed text, since any error in the chain could print the secret again;
// others, and nil, pass unchanged.
func (r Redactor) RedactError(err error) error {
	if err == nil || !r.contained(err.Error()) {
		return err
	}
	return errors.New(r.Scrub(err.Error()))
}

// RedactSinkError returns a sink's classified write error as a *agent.SinkError
// whose text holds no secret, keeping its kind and requested delay. An error
// that is not a agent.SinkError is agent.Retryable, as Classify takes it; nil (or a nil
// *agent.SinkError) is nil. An error without secrets is returned as it is; one
// with secrets gets a plain cause with the scrubbed text.
func (r Redactor) RedactSinkError(err error) *agent.SinkError {
	if err == nil {
		return nil
	}
	var se *agent.SinkError
	if !errors.As(err, &se) {
		se = &agent.SinkError{Kind: agent.Retryable, Err: err}
	}
	if se == nil || !r.contained(se.Err.Error()) {
		return se
	}
	return &agent.SinkError{Kind: se.Kind, RetryAfter: se.RetryAfter, Rejected: se.Rejected, Err: errors.New(r.Scrub(se.Err.Error()))}
}
