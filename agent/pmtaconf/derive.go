package pmtaconf

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DefaultPath is where PowerMTA keeps its configuration, and DefaultWebmonCert
// the self-signed certificate PowerMTA 5 generates for its web monitor.
const (
	DefaultPath       = "/etc/pmta/config"
	DefaultWebmonCert = "/var/lib/pmta/webmon.pem"
	defaultPort       = "8080" // http-mgmt-port when the file names none
	defaultRecords    = "d,b"  // an <acct-file>'s records when it names none
)

// Finding is something Derive has to say about a line of the configuration:
// a note (what it did) or a warning (what is risky).
type Finding struct {
	Pos  Pos
	Text string
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s", f.Pos, f.Text) }

// API is how the agent reaches the management interface on this host.
type API struct {
	// Decided is false when http-mgmt-port is no port number: then nothing
	// about the API comes from the file. Enabled is false when it is 0.
	Decided bool
	Enabled bool
	// URL is the loopback address of the web monitor: https when PowerMTA
	// redirects to HTTPS and its certificate is there, http otherwise.
	URL     string
	URLFrom Pos
	// CAFile is the certificate to trust, exactly that one, for https.
	CAFile string
	// APIKey is the first http-api-key: a secret, never to be printed.
	APIKey  string
	KeyFrom Pos
	// LoopbackAllowed says whether http-access lets 127.0.0.1 in without a
	// key (the first rule matching it grants more than none).
	LoopbackAllowed bool
}

// AcctFile is one <acct-file> of the configuration.
type AcctFile struct {
	// Path is the block's path: a template, whose files on disk are named
	// <stem>-YYYY-MM-DD-NNNN<ext> in its directory.
	Path string
	Pos  Pos
	// Records are the record types the file holds (default d,b).
	Records []string
	// MoveTo is the directory finished files move to, if any.
	MoveTo string
	// Globs match the file's rotated names, where PowerMTA writes them and
	// where move-to puts them.
	Globs []string
}

// Derived is what the agent takes from PowerMTA's configuration.
type Derived struct {
	API  API
	Acct []AcctFile
	// SourceIPs maps a vmta to its smtp-source-host address; Pools a vmta
	// to its <virtual-mta-pool>.
	SourceIPs map[string]string
	Pools     map[string]string
	// DomainMacros maps a domain to the name of the domain-macro listing
	// it: the operator's own provider groups.
	DomainMacros map[string]string
	Notes        []Finding
	Warnings     []Finding
}

// AcctGlobs returns every accounting file's globs, without repeats.
func (d *Derived) AcctGlobs() []string {
	var out []string
	for _, f := range d.Acct {
		for _, g := range f.Globs {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// Options adjust Derive, for tests and unusual installs.
type Options struct {
	// WebmonCert is PowerMTA 5's web monitor certificate (default
	// DefaultWebmonCert); when it exists and HTTPS is not turned off, the
	// API URL is https and trusts it.
	WebmonCert string
}

// Derive reads what the agent needs from a parsed configuration.
func Derive(root *Block, o Options) *Derived {
	if o.WebmonCert == "" {
		o.WebmonCert = DefaultWebmonCert
	}
	d := &Derived{SourceIPs: map[string]string{}, Pools: map[string]string{}, DomainMacros: map[string]string{}}
	d.api(root, o)
	d.acct(root)
	d.vmtas(root)
	d.macros(root)
	return d
}

func (d *Derived) note(p Pos, format string, args ...any) {
	d.Notes = append(d.Notes, Finding{p, fmt.Sprintf(format, args...)})
}

func (d *Derived) warn(p Pos, format string, args ...any) {
	d.Warnings = append(d.Warnings, Finding{p, fmt.Sprintf(format, args...)})
}

func isFalse(v string) bool {
	switch strings.ToLower(v) {
	case "false", "no", "off", "0":
		return true
	}
	return false
}

var loopback = netip.MustParseAddr("127.0.0.1")

func (d *Derived) api(root *Block, o Options) {
	port, pos := defaultPort, root.Pos
	if dir, ok := root.Last("http-mgmt-port"); ok {
		port, pos = dir.Value(), dir.Pos
	} else {
		d.note(root.Pos, "no http-mgmt-port: PowerMTA's default %s", defaultPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != port {
		d.warn(pos, "http-mgmt-port %q is no port number: the API settings are not taken from it", port)
		return
	}
	d.API.Decided, d.API.URLFrom = true, pos
	if port == "0" {
		d.note(pos, "http-mgmt-port 0: the web monitor is off, so is the agent's API source")
		return
	}
	d.API.Enabled = true
	scheme := "http"
	redirect, hasRedirect := root.Last("http-redirect-to-https")
	switch _, err := os.Stat(o.WebmonCert); {
	case hasRedirect && isFalse(redirect.Value()):
		d.note(redirect.Pos, "HTTPS redirect off: plain http")
	case err == nil:
		scheme, d.API.CAFile = "https", o.WebmonCert
	default:
		d.note(pos, "no web monitor certificate at %s (PowerMTA 4.x, or 5 before its first start): plain http", o.WebmonCert)
	}
	d.API.URL = scheme + "://127.0.0.1:" + port
	if keys := root.All("http-api-key"); len(keys) > 0 {
		d.API.APIKey, d.API.KeyFrom = keys[0].Value(), keys[0].Pos
	}
	decided := false
	for _, rule := range root.Directives {
		if rule.Name != "http-access" && rule.Name != "http-mgmt-source" {
			continue
		}
		if rule.Name == "http-mgmt-source" {
			d.note(rule.Pos, "http-mgmt-source is the deprecated form of http-access")
		}
		if len(rule.Args) < 2 {
			continue
		}
		prefix, err := parseCIDR(rule.Args[0])
		if err != nil {
			d.warn(rule.Pos, "http-access %q: not an address or CIDR the agent understands", rule.Args[0])
			continue
		}
		level := strings.ToLower(strings.Join(rule.Args[1:], " "))
		granted := !strings.HasPrefix(level, "none")
		if granted && prefix.Bits() == 0 {
			d.warn(rule.Pos, "the management port is open to every address (%s %s): allow the hosts that need it, or loopback only", prefix, level)
		}
		if strings.HasPrefix(level, "admin") && !prefix.Addr().IsLoopback() {
			d.warn(rule.Pos, "admin access beyond loopback (%s): anyone there can change PowerMTA's configuration", prefix)
		}
		if !decided && prefix.Contains(loopback) {
			d.API.LoopbackAllowed, decided = granted, true
		}
	}
	if !d.API.LoopbackAllowed && d.API.APIKey == "" {
		d.warn(pos, "the agent has no way to authenticate: no http-access rule lets 127.0.0.1 in and there is no http-api-key; add \"http-access 127.0.0.1/32 monitor\"")
	}
}

// longRecordNames are the long names of the record types.
var longRecordNames = map[string]string{
	"delivery": "d", "bounce": "b", "transient": "t", "transient-queue": "tq", "receipt": "r",
	"feedback-loop": "f", "remote-bounce": "rb", "remote-status": "rs",
}

func (d *Derived) acct(root *Block) {
	for _, b := range root.Children("acct-file") {
		path := b.Arg()
		if strings.HasPrefix(path, "|") {
			d.note(b.Pos, "<acct-file %s> is a pipe to a program: the agent cannot read it", path)
			continue
		}
		if path == "" {
			d.warn(b.Pos, "<acct-file> without a path")
			continue
		}
		f := AcctFile{Path: path, Pos: b.Pos}
		records := defaultRecords
		if r, ok := b.Last("records"); ok {
			records = r.Value()
		}
		for _, t := range strings.FieldsFunc(records, func(r rune) bool { return r == ',' || r == ' ' }) {
			t = strings.ToLower(t)
			if long, ok := longRecordNames[t]; ok {
				t = long
			}
			if !slices.Contains(f.Records, t) {
				f.Records = append(f.Records, t)
			}
		}
		dir, base := filepath.Split(path)
		ext := filepath.Ext(base)
		pattern := strings.TrimSuffix(base, ext) + "-*" + ext
		f.Globs = []string{filepath.Join(dir, pattern)}
		if m, ok := b.Last("move-to"); ok && m.Value() != "" {
			f.MoveTo = m.Value()
			f.Globs = append(f.Globs, filepath.Join(f.MoveTo, pattern))
		}
		if _, ok := b.Last("http-webhook-url"); ok {
			d.note(b.Pos, "<acct-file %s> posts its records to a webhook; the agent reads the file it stages them in", path)
		}
		d.Acct = append(d.Acct, f)
	}
	if len(d.Acct) == 0 {
		d.note(root.Pos, "no <acct-file> the agent can read: its accounting source is off")
	}
}

func (d *Derived) vmtas(root *Block) {
	for _, b := range root.Children("virtual-mta") {
		if h, ok := b.Last("smtp-source-host"); ok && len(h.Args) > 0 {
			if _, err := netip.ParseAddr(h.Args[0]); err == nil {
				d.SourceIPs[b.Arg()] = h.Args[0]
			}
		}
	}
	for _, p := range root.Children("virtual-mta-pool") {
		for _, m := range p.All("virtual-mta") {
			if first, ok := d.Pools[m.Value()]; ok && first != p.Arg() {
				d.note(m.Pos, "vmta %s is in pools %s and %s: the agent fills in the first", m.Value(), first, p.Arg())
				continue
			}
			d.Pools[m.Value()] = p.Arg()
		}
	}
}

func (d *Derived) macros(root *Block) {
	for _, m := range root.All("domain-macro") {
		if len(m.Args) < 2 {
			continue
		}
		name := m.Args[0]
		for _, dom := range strings.FieldsFunc(strings.Join(m.Args[1:], " "), func(r rune) bool { return r == ',' || r == ' ' }) {
			dom = strings.ToLower(dom)
			if prev, ok := d.DomainMacros[dom]; ok && prev != name {
				d.note(m.Pos, "domain %s is in macros %s and %s: the first wins", dom, prev, name)
				continue
			}
			d.DomainMacros[dom] = name
		}
	}
}

// parseCIDR reads an address or network the way PowerMTA writes them: a
// plain address is one host, and an IPv4 network may leave its trailing zero
// octets out ("0/0" is every address, "10.1.0/24" is 10.1.0.0/24).
func parseCIDR(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	if !strings.Contains(addr, ":") {
		for strings.Count(addr, ".") < 3 {
			addr += ".0"
		}
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !hasBits {
		return a.Prefix(a.BitLen())
	}
	var n int
	if _, err := fmt.Sscanf(bits, "%d", &n); err != nil || fmt.Sprint(n) != bits {
		return netip.Prefix{}, fmt.Errorf("bad prefix length %q", bits)
	}
	return a.Prefix(n)
}
