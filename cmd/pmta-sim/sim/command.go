package sim

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// cmdResult is the outcome of one command in every form a client may ask for.
type cmdResult struct {
	err  error
	msg  string // the CLI's one-line answer for action commands
	data any    // structured reply of show commands, nil for actions
	text string // the CLI's plain text
}

// queueMatcher matches "domain[/vmta]" with * wildcards in both halves; a bare
// domain means every vmta of that domain.
type queueMatcher struct{ dom, vmta string }

func parseQueuePattern(p string) (queueMatcher, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" {
		return queueMatcher{}, errors.New("missing queue name (domain[/vmta])")
	}
	m := queueMatcher{dom: p, vmta: "*"}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		m.dom, m.vmta = p[:i], p[i+1:]
	}
	if m.vmta == "" {
		m.vmta = "*"
	}
	for _, part := range []string{m.dom, m.vmta} {
		if _, err := path.Match(part, ""); err != nil {
			return queueMatcher{}, fmt.Errorf("bad queue pattern %q: %w", p, err)
		}
	}
	return m, nil
}

func (m queueMatcher) match(dom, vmta string) bool {
	okD, _ := path.Match(m.dom, dom)
	okV, _ := path.Match(m.vmta, strings.ToLower(vmta))
	return okD && okV
}

// matching lists the indexes of the queues a pattern names. The caller holds mu.
func (s *Sim) matching(pattern string) ([]int, error) {
	m, err := parseQueuePattern(pattern)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range s.queues {
		q := &s.queues[i]
		if m.match(s.domains[q.di].name, s.vmtas[q.vi].name) {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no queue matches %q", pattern)
	}
	return out, nil
}

// options splits a command's arguments into --name[=value] options and the rest.
func options(args []string) (map[string]string, []string) {
	opts := map[string]string{}
	var rest []string
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			k, v, _ := strings.Cut(name, "=")
			opts[strings.ToLower(k)] = v
			continue
		}
		rest = append(rest, a)
	}
	return opts, rest
}

// Command runs one PowerMTA command line (without "pmta") against the model
// and returns its one-line answer, as the CLI would print it. It is the same
// code path POST /command uses.
func (s *Sim) Command(line string) (string, error) {
	r := s.runCommand(line)
	if r.err != nil {
		return "", r.err
	}
	if r.data != nil {
		return r.text, nil
	}
	return r.msg, nil
}

// runCommand executes a command line.
func (s *Sim) runCommand(line string) cmdResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	words := strings.Fields(line)
	if len(words) == 0 {
		return cmdResult{err: errors.New("empty command")}
	}
	verb := strings.ToLower(words[0])
	args := words[1:]
	var r cmdResult
	switch {
	case (verb == "pause" || verb == "resume") && len(args) > 0 && strings.EqualFold(args[0], "queue"):
		r = s.cmdPause(verb == "pause", args[1:])
	case verb == "schedule":
		r = s.cmdSchedule(args)
	case verb == "set" && len(args) > 0 && strings.EqualFold(args[0], "queue"):
		r = s.cmdSetQueue(args[1:])
	case verb == "show":
		r = s.cmdShow(args)
	case verb == "list":
		r = s.cmdList(args)
	case verb == "reset" && len(args) == 1 && strings.EqualFold(args[0], "counters"):
		s.resetCounters()
		r = cmdResult{msg: "Counters reset."}
	default:
		r = cmdResult{err: fmt.Errorf("unknown command %q", line)}
	}
	if r.err == nil && r.data == nil {
		r.text = r.msg + "\n"
		s.log.Info("command", "command", line, "result", r.msg)
	}
	return r
}

func (s *Sim) cmdPause(pause bool, args []string) cmdResult {
	if len(args) != 1 {
		return cmdResult{err: errors.New("usage: pause|resume queue domain[/vmta]")}
	}
	qs, err := s.matching(args[0])
	if err != nil {
		return cmdResult{err: err}
	}
	s.fold()
	for _, qi := range qs {
		if pause {
			s.pause(qi, s.last)
		} else {
			s.resume(qi, s.last)
		}
	}
	s.newSegment()
	if pause {
		return cmdResult{msg: "Queue(s) paused."}
	}
	return cmdResult{msg: "Queue(s) resumed."}
}

func (s *Sim) cmdSchedule(args []string) cmdResult {
	opts, rest := options(args)
	for k := range opts {
		if k != "retry-recipients" {
			return cmdResult{err: fmt.Errorf("schedule: unknown option --%s", k)}
		}
	}
	if len(rest) != 1 {
		return cmdResult{err: errors.New("usage: schedule [--retry-recipients] domain/vmta")}
	}
	qs, err := s.matching(rest[0])
	if err != nil {
		return cmdResult{err: err}
	}
	scheduled := 0
	for _, qi := range qs {
		if s.stateAt(qi, s.last).rcp > 0 {
			scheduled++
		}
		s.setMode(qi, "normal", s.last)
	}
	return cmdResult{msg: fmt.Sprintf("%d of %d matching queues scheduled.", scheduled, len(qs))}
}

func (s *Sim) cmdSetQueue(args []string) cmdResult {
	opts, rest := options(args)
	mode, ok := opts["mode"]
	if !ok || len(opts) != 1 || len(rest) != 1 {
		return cmdResult{err: errors.New("usage: set queue --mode={normal|backoff} domain/vmta")}
	}
	mode = strings.ToLower(mode)
	if mode != "normal" && mode != "backoff" {
		return cmdResult{err: fmt.Errorf("set queue: bad mode %q (normal or backoff)", mode)}
	}
	qs, err := s.matching(rest[0])
	if err != nil {
		return cmdResult{err: err}
	}
	for _, qi := range qs {
		s.setMode(qi, mode, s.last)
	}
	return cmdResult{msg: fmt.Sprintf("Mode of %d queue(s) set to %s.", len(qs), mode)}
}

// listed is one queue in list's reply: its recipients and how long the
// oldest has waited.
type listed struct {
	Queue  string `json:"queue"`
	Rcp    int64  `json:"rcp"`
	Oldest int64  `json:"oldestSeconds"`
}

// cmdList answers "list [--queue=d[/v]] [--older-than=AGE] [--maxitems=N]"
// per queue, not per recipient as PowerMTA does (the model keeps no
// recipients): the queues that hold recipients older than AGE, with their
// count and the oldest one's age. In the model a recipient waits as long as
// its queue has been paused or held in backoff by a command; in a queue
// that delivers, the oldest is younger than a minute.
func (s *Sim) cmdList(args []string) cmdResult {
	opts, rest := options(args)
	if len(rest) != 0 {
		return cmdResult{err: errors.New("usage: list [--queue=domain[/vmta]] [--older-than=AGE] [--maxitems=N]")}
	}
	pattern, olderThan, limit := "*/*", int64(0), 0
	for k, v := range opts {
		switch k {
		case "queue":
			pattern = v
		case "older-than":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return cmdResult{err: fmt.Errorf("list: bad --older-than %q (e.g. 1h, 30m)", v)}
			}
			olderThan = int64(d / time.Second)
		case "maxitems":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return cmdResult{err: fmt.Errorf("list: bad --maxitems %q", v)}
			}
			limit = n
		default:
			return cmdResult{err: fmt.Errorf("list: unknown option --%s", k)}
		}
	}
	qs, err := s.matching(pattern)
	if err != nil {
		return cmdResult{err: err}
	}
	var out []listed
	var total int64
	for _, qi := range qs {
		q := &s.queues[qi]
		st := s.stateAt(qi, s.last)
		if st.rcp == 0 {
			continue
		}
		oldest := int64(30)
		switch {
		case q.paused:
			oldest = s.last - q.pausedAt
		case q.override == "backoff":
			oldest = s.last - q.overAt
		}
		if oldest < olderThan {
			continue
		}
		out = append(out, listed{Queue: q.name, Rcp: st.rcp, Oldest: oldest})
		total += st.rcp
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	var text strings.Builder
	for _, l := range out {
		fmt.Fprintf(&text, "%-40s %8d  %ds\n", l.Queue, l.Rcp, l.Oldest)
	}
	fmt.Fprintf(&text, "%d recipients in %d queues.\n", total, len(out))
	if out == nil {
		out = []listed{}
	}
	return cmdResult{data: out, text: text.String()}
}

func (s *Sim) cmdShow(args []string) cmdResult {
	opts, rest := options(args)
	if len(rest) != 1 {
		return cmdResult{err: errors.New("usage: show status|queues|domains|vmtas|version")}
	}
	limit := 20 // the CLI's default for listings
	if v, ok := opts["maxitems"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return cmdResult{err: fmt.Errorf("show: bad --maxitems %q", v)}
		}
		limit = n
	}
	snap := s.snapshot()
	switch strings.ToLower(rest[0]) {
	case "status":
		return cmdResult{data: wireStatus(snap.Status), text: textStatus(snap.Status)}
	case "queues", "topqueues":
		qs := top(snap.Queues, limit)
		return cmdResult{data: wireQueues(qs, snap.Queues), text: textQueues(qs)}
	case "domains", "topdomains":
		ds := top(snap.Domains, limit)
		return cmdResult{data: wireDomains(ds), text: textDomains(ds, len(snap.Domains), domainErrors(snap.Queues))}
	case "vmtas":
		vs := top(snap.VMTAs, limit)
		return cmdResult{data: wireVMTAs(vs), text: textVMTAs(vs, snap.Status.Queue.SMTP.Rcp, len(snap.VMTAs))}
	case "version":
		return cmdResult{data: wireStatus(snap.Status).MTA.Product, text: textVersion(snap.Status)}
	}
	return cmdResult{err: fmt.Errorf("show: unknown object %q", rest[0])}
}

// top returns the first n items, or all when n is 0.
func top[T any](items []T, n int) []T {
	if n <= 0 || n >= len(items) {
		return items
	}
	return items[:n]
}

// domainErrors picks each domain's newest queue error for the text listing.
func domainErrors(qs []Queue) map[string]string {
	out := map[string]string{}
	newest := map[string]int64{}
	for _, q := range qs {
		if len(q.Events) == 0 {
			continue
		}
		if t := q.Events[0].Time.Unix(); t > newest[q.Domain] {
			newest[q.Domain], out[q.Domain] = t, q.Events[0].Text
		}
	}
	return out
}
