package influx

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// minPassword is the shortest bare password that is scrubbed from text.
const minPassword = 4

// secrets are the strings that must never appear in an error or a log line:
// the token, the password half of a 1.8 "user:password" token, and a password
// in the URL.
type secrets []string

func newSecrets(token string, u *url.URL) secrets {
	var s secrets
	add := func(v string, minLen int) {
		if v != "" && len(v) >= minLen {
			s = append(s, v)
		}
	}
	add(token, 1)
	// A bare password is scrubbed only from minPassword characters on: a
	// shorter one would garble every message (a password "p" turns
	// `database "pmta"` into `"[redacted]mta"`) while protecting nothing.
	if _, pass, ok := strings.Cut(token, ":"); ok {
		add(pass, minPassword)
	}
	if u != nil && u.User != nil {
		if pass, ok := u.User.Password(); ok {
			add(pass, minPassword)
			// Go's client turns URL credentials into a Basic header, which
			// an echoing server would show in this form.
			add(base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)), 1)
		}
	}
	return s
}

// scrub replaces every secret in text.
func (s secrets) scrub(text string) string {
	for _, v := range s {
		text = strings.ReplaceAll(text, v, "[redacted]")
	}
	return text
}

func (s secrets) contained(text string) bool {
	for _, v := range s {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// redact returns the classified error with any secret removed from its text.
// A server or proxy may echo the Authorization header in its answer. Only an
// error that holds a secret loses its chain (to a plain error with the
// scrubbed text); others pass unchanged. A nil error stays nil.
func (s secrets) redact(err error) *agent.SinkError {
	if err == nil {
		return nil
	}
	var se *agent.SinkError
	if !errors.As(err, &se) {
		se = &agent.SinkError{Kind: agent.Retryable, Err: err}
	}
	if !s.contained(se.Err.Error()) {
		return se
	}
	return &agent.SinkError{Kind: se.Kind, RetryAfter: se.RetryAfter, Err: errors.New(s.scrub(se.Err.Error()))}
}

// redactErr is redact for errors that are not SinkErrors.
func (s secrets) redactErr(err error) error {
	if err == nil || !s.contained(err.Error()) {
		return err
	}
	return errors.New(s.scrub(err.Error()))
}
