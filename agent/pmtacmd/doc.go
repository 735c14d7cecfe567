// Package pmtacmd sends commands to PowerMTA through its HTTP management
// interface, with the API settings the poller uses (URL, X-API-Key, TLS).
//
// It has four parts, each usable alone:
//
//   - Parse reads a command line as PowerMTA's command line interface would
//     (words split at blanks, double quotes group), and refuses what has no
//     business in one: control and format characters, newlines, NUL, invalid
//     UTF-8, more than MaxLineBytes. A Command always prints back (String)
//     to a line that parses to the same Command.
//   - Translate turns the seed document's verbs into real PowerMTA's, and
//     says so: PowerMTA has no "retry" (it is "schedule domain/*"), no
//     "show queue --age-min" (it is "list --older-than"), and a bare domain
//     in "pause queue" may name only the queue of the {default} VirtualMTA,
//     so the domain gets "/*". Every other command passes unchanged.
//   - ValidQueue, ValidDomain and ValidVMTA check the arguments a caller
//     may let strangers choose (a relay, an Alertmanager webhook), and
//     Command.Validate checks the syntax of the commands PowerMTA
//     documents.
//   - Client runs a Command: real PowerMTA's POST /command with the form
//     fields command and format=json and its {"data","status","message"}
//     reply, or the seed dialect's plain-text body and reply. A refusal by
//     PowerMTA is a *RefusedError carrying PowerMTA's message; everything
//     else (no answer, HTTP 403 or 500, a reply that is not PowerMTA's, one
//     over api.max_body_bytes, api.timeout) is another error, so that a
//     caller can tell "PowerMTA said no" from "PowerMTA could not be asked".
//
// The API key travels only in the X-API-Key header, only to the configured
// origin (the poller's redirect rule), and is scrubbed from whatever comes
// back — errors, messages, data — in case a proxy echoes it.
package pmtacmd
