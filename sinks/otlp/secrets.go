package otlp

import (
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/redact"
)

// minSecret is the shortest header value (or credential within one) that is
// scrubbed from text: a shorter one would garble every message while
// protecting nothing.
const minSecret = 4

// newSecrets returns the redactor of the header values, which must never
// appear in an error or a log line: a server may echo a header in its answer.
func newSecrets(headers map[string]string) redact.Redactor {
	var s []string
	for _, v := range headers {
		if len(v) >= minSecret {
			s = append(s, v)
		}
		// "Bearer <token>", "Basic <credentials>": the credential alone
		// may be echoed too.
		if _, cred, ok := strings.Cut(v, " "); ok && len(strings.TrimSpace(cred)) >= minSecret {
			s = append(s, strings.TrimSpace(cred))
		}
	}
	return redact.New(s...)
}
