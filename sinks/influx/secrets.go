package influx

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/redact"
)

// minPassword is the shortest bare password that is scrubbed from text.
const minPassword = 4

// newSecrets returns the redactor of the strings that must never appear in
// an error or a log line: the token, the password half of a 1.8
// "user:password" token, and a password in the URL.
func newSecrets(token string, u *url.URL) redact.Redactor {
	var s []string
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
	return redact.New(s...)
}
