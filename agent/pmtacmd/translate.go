package pmtacmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/poller"
)

// Translate returns the command real PowerMTA understands for c, and a note
// saying what changed and why ("" when nothing did). Only the pmta dialect
// ("" counts as pmta, the default) is translated; the seed dialect's proxy
// takes the seed document's words as they are.
//
// The seed document's verbs (reference §3.1):
//
//	retry queue D[/V]        → schedule D/* (or D/V)     PowerMTA has no "retry"
//	pause queue D            → pause queue D/*           a bare domain may name only D/{default}
//	resume queue D           → resume queue D/*
//	show queue --age-min=A   → list --queue=*/* --older-than=A
//	show queue D --age-min=A → list --queue=D/* --older-than=A
//	show queue               → show queues
//
// and, for the same reason as pause, a bare domain gets "/*" in "schedule
// D" and "list --queue=D". Other queue arguments — of delete, set queue,
// disable source — are sent as written: there "every VirtualMTA" would
// widen a command the operator wrote in PowerMTA's own syntax. Every other
// command, and every word Translate does not know, passes unchanged.
func Translate(dialect string, c Command) (Command, string) {
	if d := strings.ToLower(strings.TrimSpace(dialect)); d != "" && d != poller.DialectPMTA {
		return c, ""
	}
	out, why := translate(c)
	if why == "" {
		return c, ""
	}
	return out, fmt.Sprintf("%q is %q on PowerMTA: %s", c.String(), out.String(), why)
}

// Reasons given in notes.
const (
	whyWildcard = "a bare domain may name only the queue of the {default} VirtualMTA, so it gets /* for every VirtualMTA"
	whyRetry    = "PowerMTA has no retry verb; schedule retries a queue now"
	whyAge      = "show has no --age-min; list --older-than lists what has been queued longer"
	whyQueues   = "the object is queues"
)

// translate returns the PowerMTA form of c and why it differs, or c and "".
func translate(c Command) (Command, string) {
	args := slices.Clone(c.Args)
	switch c.Name() {
	case "retry queue":
		if len(args) < 2 {
			return c, "" // nothing to retry: let the proxy or PowerMTA say so
		}
		rest, why := wildcardQueues(args[1:]), whyRetry
		if !slices.Equal(rest, args[1:]) {
			why += "; " + whyWildcard
		}
		return Command{Verb: "schedule", Args: rest}, why
	case "pause queue", "resume queue":
		rest := wildcardQueues(args[1:])
		if slices.Equal(rest, args[1:]) {
			return c, ""
		}
		return Command{Verb: strings.ToLower(c.Verb), Args: append([]string{strings.ToLower(args[0])}, rest...)}, whyWildcard
	case "schedule":
		rest := wildcardQueues(args)
		if slices.Equal(rest, args) {
			return c, ""
		}
		return Command{Verb: "schedule", Args: rest}, whyWildcard
	case "list":
		rest := wildcardListQueue(args)
		if slices.Equal(rest, args) {
			return c, ""
		}
		return Command{Verb: "list", Args: rest}, whyWildcard
	case "show queue", "show queues":
		return translateShowQueue(c)
	}
	return c, ""
}

// translateShowQueue turns the seed document's "show queue [D]
// --age-min=A" into "list --queue=D/* --older-than=A" (other options kept),
// and "show queue" without an age into "show queues".
func translateShowQueue(c Command) (Command, string) {
	var (
		age             string
		hasAge          bool
		rest, positions []string
	)
	args := c.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case strings.EqualFold(name, "--age-min") && hasValue:
			age, hasAge = value, true
		case strings.EqualFold(a, "--age-min") && i+1 < len(args):
			age, hasAge = args[i+1], true
			i++
		case strings.HasPrefix(a, "--"):
			rest = append(rest, a)
		default:
			positions = append(positions, a)
		}
	}
	if !hasAge {
		if !strings.EqualFold(c.Args[0], "queue") {
			return c, "" // show queues without --age-min is PowerMTA's own
		}
		return Command{Verb: "show", Args: append([]string{"queues"}, c.Args[1:]...)}, whyQueues
	}
	if len(positions) > 1 {
		return c, "" // not the seed's form: let PowerMTA say what is wrong
	}
	queue := "*/*"
	if len(positions) == 1 {
		queue = wildcardQueue(positions[0])
	}
	out := append([]string{"--queue=" + queue, "--older-than=" + age}, rest...)
	return Command{Verb: "list", Args: out}, whyAge
}

// wildcardQueues gives each bare domain among args "/*"; options pass.
func wildcardQueues(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			out[i] = a
			continue
		}
		out[i] = wildcardQueue(a)
	}
	return out
}

// wildcardListQueue gives the domain of list's --queue= option "/*".
func wildcardListQueue(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if name, value, ok := strings.Cut(a, "="); ok && strings.EqualFold(name, "--queue") {
			out[i] = name + "=" + wildcardQueue(value)
		}
	}
	return out
}

// wildcardQueue returns "d/*" for a bare domain d, anything else as it is.
func wildcardQueue(q string) string {
	if q == "" || strings.Contains(q, "/") {
		return q
	}
	return q + "/*"
}
