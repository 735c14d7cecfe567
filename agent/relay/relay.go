package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/pmtacmd"
)

// Runner sends one command to PowerMTA: *pmtacmd.Client.
type Runner interface {
	Run(ctx context.Context, cmd pmtacmd.Command) (pmtacmd.Reply, error)
}

// Relay serves /v1/command and /v1/alertmanager.
type Relay struct {
	cfg     Config
	tokens  atomic.Pointer[tokens]
	limit   *limiter
	runner  atomic.Pointer[runnerBox]
	unauth  atomic.Int64 // refusals of callers without a token not audited one by one
	emit    func(agent.Batch)
	log     *slog.Logger
	now     func() time.Time
	domains *domainBook
	alerts  *alertState
	server  string
	// writeFor is how long an answer may take to write, from the request
	// on (nanoseconds; 0: the listener's own timeout): a relayed command
	// waits for PowerMTA up to api.timeout, which a reload may change.
	writeFor atomic.Int64
}

// SetCommandTimeout says how long PowerMTA may take to answer a command
// (api.timeout): each request's answer may then be written for that long
// and 10 s more (at least 30 s), whatever the listener's write timeout —
// which is set at start, while api.timeout changes with a reload.
func (rl *Relay) SetCommandTimeout(d time.Duration) {
	rl.writeFor.Store(int64(max(30*time.Second, d+10*time.Second)))
}

// withDeadline gives h's answer the write deadline SetCommandTimeout set.
func (rl *Relay) withDeadline(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(rl.writeFor.Load()); d > 0 {
			// An error means the connection cannot take a deadline (a
			// test recorder): the listener's own stays.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		}
		h(w, r)
	})
}

// runnerBox is where commands go and the dialect they are translated for:
// they change together on a reload.
type runnerBox struct {
	r       Runner
	dialect string
}

// New reads the tokens file and returns the relay; emit takes the audit's
// pmta_event points (the engine's pipeline), dialect is the API's.
func New(cfg Config, dialect string, r Runner, emit func(agent.Batch), log *slog.Logger) (*Relay, error) {
	t, err := loadTokens(cfg.TokensFile)
	if err != nil {
		return nil, fmt.Errorf("relay.tokens_file: %w", err)
	}
	rl := &Relay{cfg: cfg, limit: newLimiter(cfg.RatePerMinute, cfg.Burst),
		emit: emit, log: log.With("component", "relay"), now: time.Now, domains: newDomainBook(),
		alerts: &alertState{last: map[string]time.Time{}}}
	rl.tokens.Store(t)
	rl.SetRunner(r, dialect)
	return rl, nil
}

// SetRunner changes where commands go and the API dialect they are
// translated for (a reload changed the API settings).
func (rl *Relay) SetRunner(r Runner, dialect string) { rl.runner.Store(&runnerBox{r, dialect}) }

// ReloadTokens reads the tokens file again (a reload): a token taken out
// is refused from now on. A file that cannot be used changes nothing.
func (rl *Relay) ReloadTokens() error {
	t, err := loadTokens(rl.cfg.TokensFile)
	if err != nil {
		return fmt.Errorf("relay.tokens_file: %w (the tokens read before stay)", err)
	}
	rl.tokens.Store(t)
	return nil
}

// Tap is what the relay learns from the points: which recipient domains
// belong to which ISP, for {domains:LABEL}. It is an engine.Enqueuer.
func (rl *Relay) Tap() *domainBook { return rl.domains }

// Routes are the relay's endpoints for the agent's listener.
func (rl *Relay) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{"POST /v1/command": rl.withDeadline(rl.serveCommand)}
	if rl.cfg.Alertmanager.Enabled {
		routes["POST /v1/alertmanager"] = rl.withDeadline(rl.serveAlertmanager)
	}
	return routes
}

// maxBody bounds a request body: a command line is at most 1 KiB, an
// Alertmanager notification a few dozen alerts.
const maxBody = 1 << 20

// caller authenticates r and takes one request off its token's budget. It
// answers and audits the refusal itself, and then returns ok = false.
// Callers without a valid token share one budget: past it they are refused
// without an event each (a flood would fill the sinks), and the next
// audited refusal says how many were.
func (rl *Relay) caller(w http.ResponseWriter, r *http.Request, kind string) (string, bool) {
	auth := r.Header.Get("Authorization")
	name, ok := "", false
	if scheme, tok, found := strings.Cut(auth, " "); found && strings.EqualFold(scheme, "Bearer") {
		name, ok = rl.tokens.Load().match(strings.TrimSpace(tok))
	}
	if !ok {
		if allowed, _ := rl.limit.allow("", rl.now()); !allowed {
			rl.unauth.Add(1)
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"status": "refused", "message": "a valid bearer token is required"})
			return "", false
		}
		msg := "no valid bearer token"
		if n := rl.unauth.Swap(0); n > 0 {
			msg += fmt.Sprintf(" (and %d more refused since the last such event, beyond the rate)", n)
		}
		rl.audit(event{kind: kind, token: "-", result: "refused", message: msg})
		w.Header().Set("WWW-Authenticate", `Bearer realm="pmta-agent"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"status": "refused", "message": "a valid bearer token is required"})
		return "", false
	}
	if !rl.tokens.Load().scopeOf(name).allows(kind) {
		msg := fmt.Sprintf("the token %s may not use /v1/%s (its scope in relay.tokens_file)", name, kind)
		rl.audit(event{kind: kind, token: name, result: "refused", message: msg})
		writeJSON(w, http.StatusForbidden, map[string]any{"status": "refused", "message": msg})
		return "", false
	}
	if ok, retry := rl.limit.allow(name, rl.now()); !ok {
		rl.audit(event{kind: kind, token: name, result: "refused", message: "rate limit"})
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"status": "refused", "message": "rate limit: try again later"})
		return "", false
	}
	return name, true
}

// commandRequest is /v1/command's body: JSON {"command": "..."}, or the
// form field command.
type commandRequest struct {
	Command string `json:"command"`
}

func (rl *Relay) serveCommand(w http.ResponseWriter, r *http.Request) {
	name, ok := rl.caller(w, r, "command")
	if !ok {
		return
	}
	line, err := readCommand(w, r)
	if err != nil {
		rl.audit(event{kind: "command", token: name, result: "refused", message: err.Error()})
		writeJSON(w, http.StatusBadRequest, map[string]any{"status": "refused", "message": err.Error()})
		return
	}
	res := rl.forwardEvent(r.Context(), event{kind: "command", token: name, command: line}, false, nil)
	writeJSON(w, res.code, res.body())
}

func readCommand(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var req commandRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return "", fmt.Errorf("body: want {\"command\": \"...\"}: %v", err)
		}
		return req.Command, nil
	}
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("body: %v", err)
	}
	return r.PostForm.Get("command"), nil
}

// result is what one forwarded command came to.
type result struct {
	code    int
	status  string // sent, refused, failed, dry_run
	message string
	sent    string
	note    string
	reply   *pmtacmd.Reply
}

func (res result) body() map[string]any {
	b := map[string]any{"status": res.status, "message": res.message}
	if res.sent != "" {
		b["sent"] = res.sent
	}
	if res.note != "" {
		b["note"] = res.note
	}
	if res.reply != nil {
		b["reply"] = res.reply
	}
	return b
}

// forwardEvent checks ev.command and sends it, unless dry: parse,
// translate to PowerMTA's words, plain verb words, the allow-list on what
// would be sent, the arguments' syntax, no wildcard domain in a command
// that changes state (unless relay.allow_wildcards), then gate (the
// Alertmanager path's cool-down and cap; nil: none). Every outcome is
// audited once.
func (rl *Relay) forwardEvent(ctx context.Context, ev event, dry bool, gate func() (bool, string)) result {
	line := ev.command
	done := func(res result) result {
		ev.result, ev.message = res.status, res.message
		if res.sent != "" {
			ev.command = res.sent
		}
		rl.audit(ev)
		return res
	}
	refuse := func(code int, note, msg string) result {
		return done(result{code: code, status: "refused", note: note, message: msg})
	}
	cmd, err := pmtacmd.Parse(line)
	if err != nil {
		return refuse(http.StatusBadRequest, "", err.Error())
	}
	box := rl.runner.Load()
	sent, note := pmtacmd.Translate(box.dialect, cmd)
	if err := plainVerb(sent); err != nil {
		return refuse(http.StatusBadRequest, note, err.Error())
	}
	ev.target = target(sent)
	if !allowed(rl.cfg.Allow, sent.Name()) {
		ev.verb = "other" // a caller's words make no series
		return refuse(http.StatusForbidden, note, fmt.Sprintf("%q is not allowed (relay.allow: %s)", sent.Name(), strings.Join(rl.cfg.Allow, ", ")))
	}
	ev.verb = sent.Name()
	if err := sent.Validate(); err != nil {
		return refuse(http.StatusBadRequest, note, err.Error())
	}
	if err := rl.checkWildcards(sent); err != nil {
		return refuse(http.StatusForbidden, note, err.Error())
	}
	if gate != nil {
		if ok, why := gate(); !ok {
			return done(result{code: http.StatusOK, status: "held", sent: sent.String(), note: note, message: why})
		}
	}
	if dry {
		return done(result{code: http.StatusOK, status: "dry_run", sent: sent.String(), note: note, message: "dry run: not sent"})
	}
	reply, err := box.r.Run(ctx, sent)
	var refused *pmtacmd.RefusedError
	switch {
	case errors.As(err, &refused):
		return done(result{code: http.StatusUnprocessableEntity, status: "refused_by_pmta", sent: sent.String(), note: note, message: err.Error(), reply: &reply})
	case err != nil:
		return done(result{code: http.StatusBadGateway, status: "failed", sent: sent.String(), note: note, message: err.Error()})
	}
	return done(result{code: http.StatusOK, status: "sent", sent: sent.String(), note: note, message: reply.Message, reply: &reply})
}

// plainVerb refuses a verb or object word that is not a plain word of
// letters and hyphens ("pause", "queue"), and a space inside any word but
// an option's value: quotes must not make one word of what a reader of the
// line, or PowerMTA, could take for several.
func plainVerb(c pmtacmd.Command) error {
	words := []string{c.Verb}
	if strings.Contains(c.Name(), " ") && len(c.Args) > 0 {
		words = append(words, c.Args[0])
	}
	for _, w := range words {
		if w == "" || strings.IndexFunc(w, func(r rune) bool { return !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) >= 0 {
			return fmt.Errorf("%q: a command word has letters and hyphens only", w)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--") && strings.Contains(a, "=") {
			continue
		}
		if strings.ContainsAny(a, " \t") {
			return fmt.Errorf("%q: a space inside a word is only for an option's value (--name=\"a b\")", a)
		}
	}
	return nil
}

// stateChanging are the commands a wildcard domain would turn on every
// queue of the server at once.
var stateChanging = map[string]bool{"pause queue": true, "resume queue": true, "schedule": true, "set queue": true}

// checkWildcards refuses, in a command that changes state, a queue whose
// domain has a wildcard ("*/*", "*.com/*"): one request would pause every
// queue. The VirtualMTA part may ("gmail.com/*" is every VirtualMTA's).
// relay.allow_wildcards lifts it.
func (rl *Relay) checkWildcards(c pmtacmd.Command) error {
	if rl.cfg.AllowWildcards || !stateChanging[c.Name()] {
		return nil
	}
	q := target(c)
	domain, _, _ := strings.Cut(q, "/")
	if strings.ContainsAny(domain, "*?") {
		return fmt.Errorf("%q names queues by a wildcard domain: one request would act on many domains (relay.allow_wildcards: true allows it)", q)
	}
	return nil
}

// target is the queue, job or object a command acts on: its last word
// that is not an option.
func target(c pmtacmd.Command) string {
	for i := len(c.Args) - 1; i >= 0; i-- {
		if a := c.Args[i]; !strings.HasPrefix(a, "-") {
			return a
		}
	}
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--queue="); ok {
			return v
		}
	}
	return ""
}

// event is one audited request.
type event struct {
	kind, token, verb, target, command, result, message string
	alert                                               string
}

// audit logs e and hands it to the sinks as a pmta_event point: tags kind
// (command, alertmanager), token, verb, result; fields target, command,
// message, alert and count=1, so that a Grafana annotation can show who did
// what and when.
func (rl *Relay) audit(e event) {
	attrs := []any{"kind", e.kind, "token", e.token, "result", e.result}
	for _, kv := range [][2]string{{"verb", e.verb}, {"target", e.target}, {"command", e.command}, {"alert", e.alert}, {"message", e.message}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	level := slog.LevelInfo
	if e.result != "sent" && e.result != "dry_run" {
		level = slog.LevelWarn
	}
	rl.log.Log(context.Background(), level, "relay request", attrs...)
	if rl.emit == nil {
		return
	}
	tags := []agent.Tag{{Key: "kind", Value: e.kind}, {Key: "result", Value: e.result}, {Key: "token", Value: e.token}}
	if e.verb != "" {
		tags = append(tags, agent.Tag{Key: "verb", Value: e.verb})
	}
	fields := []agent.Field{{Key: "count", Value: int64(1)}}
	for _, kv := range [][2]string{{"alert", e.alert}, {"command", e.command}, {"message", e.message}, {"target", e.target}} {
		if kv[1] != "" {
			fields = append(fields, agent.Field{Key: kv[0], Value: kv[1]})
		}
	}
	rl.emit(agent.Batch{Source: "relay", Points: []agent.Point{agent.NewPoint("pmta_event", tags, fields, rl.now())}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// domainBook remembers, from the points the agent makes, which recipient
// domains belong to which ISP (pmta_queue and pmta_domain carry both).
type domainBook struct {
	mu    sync.Mutex
	byISP map[string]map[string]time.Time // isp → domain → last seen
}

func newDomainBook() *domainBook { return &domainBook{byISP: map[string]map[string]time.Time{}} }

// maxDomainsPerISP bounds what one ISP may name: a pause names each.
const maxDomainsPerISP = 100

// Enqueue implements engine.Enqueuer.
func (b *domainBook) Enqueue(points []agent.Point, durable func()) {
	defer func() {
		if durable != nil {
			durable()
		}
	}()
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range points {
		p := &points[i]
		if p.Measurement != "pmta_queue" && p.Measurement != "pmta_domain" {
			continue
		}
		d, okD := p.TagValue("domain")
		isp, okI := p.TagValue("isp")
		if !okD || !okI || d == "" || d == "other" || isp == "" || !plainWord(d) || pmtacmd.ValidDomain(d) != nil {
			continue // a recipient domain is a stranger's word: only plain domains may fill a command
		}
		m := b.byISP[isp]
		if m == nil {
			m = map[string]time.Time{}
			b.byISP[isp] = m
		}
		if _, seen := m[d]; seen || len(m) < maxDomainsPerISP {
			m[d] = now
		}
	}
}

// of returns the domains seen for isp in the last day, sorted.
func (b *domainBook) of(isp string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for d, at := range b.byISP[isp] {
		if time.Since(at) < 24*time.Hour {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}
