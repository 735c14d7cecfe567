package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent"
)

func TestRedactorScrub(t *testing.T) {
	tests := []struct {
		name    string
		r       Redactor
		in, out string
	}{
		{"zero redactor", Redactor{}, "token abc", "token abc"},
		{"every occurrence", New("s3cret"), "s3cret and s3cret", "[redacted] and [redacted]"},
		{"whole credential before its part", New("u:pw-123", "pw-123"),
			"Token u:pw-123, then pw-123", "Token [redacted], then [redacted]"},
		{"empty secret dropped", New("", "abcd"), "xyz abcd", "xyz [redacted]"},
		{"only empty secrets", New(""), "left as it is", "left as it is"},
	}
	for _, tt := range tests {
		if got := tt.r.Scrub(tt.in); got != tt.out {
			t.Errorf("%s: Scrub(%q) = %q, want %q", tt.name, tt.in, got, tt.out)
		}
	}
}

func TestRedactorKeepsKindAndDelay(t *testing.T) {
	sec := New("u:pw-123", "pw-123")
	se := sec.RedactSinkError(&agent.SinkError{Kind: agent.Throttled, RetryAfter: 5, Err: fmt.Errorf("echo Token u:pw-123")})
	if se.Kind != agent.Throttled || se.RetryAfter != 5 || strings.Contains(se.Error(), "pw-123") {
		t.Errorf("redact = %+v", se)
	}
	plain := &agent.SinkError{Kind: agent.Permanent, Err: fmt.Errorf("nothing secret")}
	if got := sec.RedactSinkError(plain); got != plain {
		t.Errorf("an error without secrets was rebuilt")
	}
	if sec.RedactSinkError(nil) != nil {
		t.Error("redact(nil) is not nil")
	}
	var none *agent.SinkError
	if sec.RedactSinkError(none) != nil {
		t.Error("a nil *agent.SinkError is not nil")
	}
}

func TestRedactSinkErrorOfOtherErrors(t *testing.T) {
	sec := New("pw-123")
	// Not a agent.SinkError: retryable, as Classify takes it.
	cause := errors.New("dial: refused")
	se := sec.RedactSinkError(cause)
	if se == nil || se.Kind != agent.Retryable || se.Err != cause {
		t.Errorf("plain error: %+v, want a retryable agent.SinkError around it", se)
	}
	se = sec.RedactSinkError(fmt.Errorf("proxy said pw-123"))
	if se == nil || se.Kind != agent.Retryable || strings.Contains(se.Error(), "pw-123") {
		t.Errorf("plain error with a secret: %+v", se)
	}
	// A wrapped agent.SinkError is found and judged by its own text.
	inner := &agent.SinkError{Kind: agent.Permanent, Err: errors.New("bad point")}
	if got := sec.RedactSinkError(fmt.Errorf("context: %w", inner)); got != inner {
		t.Errorf("wrapped agent.SinkError: %+v, want the inner one", got)
	}
}

func TestRedactError(t *testing.T) {
	sec := New("pw-123")
	if sec.RedactError(nil) != nil {
		t.Error("RedactError(nil) is not nil")
	}
	clean := fmt.Errorf("ping: %w", fs.ErrNotExist)
	if got := sec.RedactError(clean); got != clean {
		t.Errorf("an error without secrets was rebuilt: %v", got)
	}
	dirty := fmt.Errorf("ping http://admin:pw-123@influx: %w", fs.ErrNotExist)
	got := sec.RedactError(dirty)
	if want := "ping http://admin:[redacted]@influx: file does not exist"; got.Error() != want {
		t.Errorf("RedactError = %q, want %q", got, want)
	}
	if errors.Is(got, fs.ErrNotExist) {
		t.Error("the scrubbed error kept its chain, which could print the secret again")
	}
}

func TestRedactSinkErrorKeepsRejected(t *testing.T) {
	r := New("s3cret-token")
	se := r.RedactSinkError(&agent.SinkError{Kind: agent.Permanent, Rejected: 3, Err: errors.New("HTTP 400 (token s3cret-token) dropped=3")})
	if se.Rejected != 3 || strings.Contains(se.Error(), "s3cret") {
		t.Errorf("redacted %+v: Rejected lost or secret kept", se)
	}
}
