// Package redact keeps secrets — tokens, passwords, API keys — out of the
// text of errors and log lines: a server or a proxy may echo a header in its
// answer.
package redact
