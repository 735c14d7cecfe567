package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// ConfigOptions shape the PowerMTA configuration file WriteConfig writes:
// where the file says the management API and the accounting files are.
type ConfigOptions struct {
	// HTTPPort is http-mgmt-port (default 8080): the port the sim's API
	// listens on.
	HTTPPort int
	// APIKey, when set, is written as http-api-key.
	APIKey string
	// TLS says the web monitor speaks HTTPS; without it the file turns the
	// redirect to HTTPS off, so a reader takes plain http.
	TLS bool
	// AcctDir is the directory of the <acct-file> (default /var/log/pmta):
	// an AcctWriter's Dir. AcctMoveTo is its move-to, AcctRecords its
	// records (default d,b,t,tq,r,f,rb,rs), AcctMaxSize its max-size
	// (default 50M); with AcctSplitDiag, t and tq go to a second file,
	// diag.csv, as AcctOptions.SplitDiag writes them.
	AcctDir, AcctMoveTo, AcctRecords string
	AcctMaxSize                      int64
	AcctSplitDiag                    bool
	// GoogleDeferral, when above 0, is the share of attempts google defers
	// while the file is as written: the cost of the tight max-msg-rate in
	// its <domain $gmail>, which the config-fix scenario doubles and so
	// halves this share. WriteConfig sets it as SetDeferralRate("google",
	// …) would, and "clear" takes it back; 0 leaves the model's 1.4 %.
	// TightGoogleDeferral is the value that makes the fix measurable.
	GoogleDeferral float64
}

// configState is what the config file holds, so that a scenario can write it
// again with one directive changed and everything else as it was.
type configState struct {
	path        string
	o           ConfigOptions
	gmailRate   int // <domain $gmail> max-msg-rate, per hour
	yahooSMTOut int // <domain $yahoo> max-smtp-out
}

// The <domain $gmail> message rate written first, and <domain $yahoo>'s
// connections (pool-yahoo's per-queue connection ceiling, as the API
// reports it). gmail's 6000/h per queue is half of what the model sends
// each gmail.com queue at its default rate: tight, hence config-fix.
const (
	gmailMsgRate = 6000
	yahooSMTPOut = 10
)

// macroNames renames an ISP for its domain-macro; the others keep theirs.
var macroNames = map[string]string{"google": "gmail"}

// WriteConfig writes a PowerMTA configuration describing the model to path:
// the management port and access, the accounting file(s), one <virtual-mta>
// per vmta with its source IP and host name, one <virtual-mta-pool> per pool,
// the domains grouped by provider in domain-macro lines ($gmail, $yahoo,
// $microsoft, …) and <domain> blocks for the big three. The file is replaced
// atomically (a temporary file in the same directory, renamed), so a reader
// never sees half of it. The Sim remembers path and o: the config scenarios
// write the file again with one directive changed.
func (s *Sim) WriteConfig(path string, o ConfigOptions) error {
	if path == "" {
		return errors.New("write PowerMTA config: no path")
	}
	if _, err := parseTypes(o.AcctRecords); err != nil {
		return fmt.Errorf("write PowerMTA config: %w", err)
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	st := &configState{path: path, o: o, gmailRate: gmailMsgRate, yahooSMTOut: yahooSMTPOut}
	if err := s.writeConfig(st); err != nil {
		return err
	}
	s.cfg = st
	if o.GoogleDeferral > 0 {
		s.mu.Lock()
		s.setScenarioRate("google", o.GoogleDeferral)
		s.mu.Unlock()
	}
	return nil
}

// writeConfig renders st and replaces its file — readable by others only
// without an http-api-key in it (PowerMTA's own is 0640 root:pmta, the agent
// reading it as a member of the group). The caller holds cfgMu.
func (s *Sim) writeConfig(st *configState) error {
	mode := os.FileMode(0o644)
	if st.o.APIKey != "" {
		mode = 0o640
	}
	if err := writeAtomic(st.path, []byte(s.renderConfig(st)), mode); err != nil {
		return fmt.Errorf("write PowerMTA config: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data (the directory created if missing):
// a watcher never reads half a file. Syncing the directory is best effort.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	err := statefile.WriteAtomic(path, data, mode)
	if _, dirOnly := errors.AsType[*statefile.DirSyncError](err); dirOnly {
		return nil // not every file system syncs a directory
	}
	return err
}

// domainMacros groups the model's domains by ISP, in the order of their
// first domain: macro name and domains. "other" is no provider and gets none.
func (s *Sim) domainMacros() ([]string, map[string][]string) {
	var order []string
	groups := map[string][]string{}
	for i := range s.domains {
		d := &s.domains[i]
		if d.isp == "other" {
			continue
		}
		name := d.isp
		if m, ok := macroNames[name]; ok {
			name = m
		}
		if _, ok := groups[name]; !ok {
			order = append(order, name)
		}
		groups[name] = append(groups[name], d.name)
	}
	return order, groups
}

// renderConfig is the text of the file.
func (s *Sim) renderConfig(st *configState) string {
	o := st.o
	var b strings.Builder
	line := func(indent bool, format string, args ...any) {
		if indent {
			b.WriteString("    ")
		}
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line(false, "# PowerMTA configuration of %s, written by pmta-sim.", s.hostname)
	line(false, "# %d virtual MTAs (one source IP each) in %d pools, %d recipient domains.", len(s.vmtas), s.poolCount(), len(s.domains))
	line(false, "")
	line(false, "postmaster postmaster@shop.example")
	line(false, "host-name %s", s.hostname)
	line(false, "smtp-listener 0/0:25")
	line(false, "run-as-root no")
	line(false, "log-file /var/log/pmta/pmta.log")
	line(false, "")
	line(false, "<source 127.0.0.1>")
	line(true, "always-allow-relaying yes")
	line(true, "process-x-virtual-mta yes")
	line(true, "smtp-service yes")
	line(false, "</source>")
	line(false, "<source 10.20.0.0/24>  # the injection hosts")
	line(true, "always-allow-relaying yes")
	line(true, "process-x-virtual-mta yes")
	line(true, "max-message-size 0")
	line(false, "</source>")
	line(false, "")
	line(false, "# Web monitor and HTTP API")
	port := o.HTTPPort
	if port <= 0 {
		port = 8080
	}
	line(false, "http-mgmt-port %d", port)
	line(false, "http-access 127.0.0.1 monitor")
	line(false, "http-access ::1 monitor")
	if o.APIKey != "" {
		line(false, "http-api-key %s", confWord(o.APIKey))
	}
	line(false, "http-redirect-to-https %t", o.TLS)
	line(false, "")

	s.renderAcct(&b, o, line)

	line(false, "<spool /var/spool/pmta>")
	line(true, "deliver-only no")
	line(false, "</spool>")
	line(false, "")
	line(false, "# Virtual MTAs: one source IP each")
	for i := range s.vmtas {
		v := &s.vmtas[i]
		line(false, "<virtual-mta %s>", v.name)
		line(true, "smtp-source-host %s %s", v.ip, v.helo)
		line(false, "</virtual-mta>")
	}
	line(false, "")
	for p := range poolDefs {
		members := s.poolVMTAs(p)
		if len(members) == 0 {
			continue
		}
		line(false, "<virtual-mta-pool %s>", poolDefs[p].name)
		for _, vi := range members {
			line(true, "virtual-mta %s", s.vmtas[vi].name)
		}
		line(false, "</virtual-mta-pool>")
	}
	line(false, "")
	line(false, "# Recipient domains by mailbox provider")
	order, groups := s.domainMacros()
	for _, m := range order {
		line(false, "domain-macro %s %s", m, strings.Join(groups[m], ", "))
	}
	line(false, "")
	line(false, "<smtp-pattern-list provider-backoff>")
	line(true, `reply /421 .*\[TSS04\]/ mode=backoff`)
	line(true, `reply /421.4\.7\.0 .*(rate|unusual)/ mode=backoff`)
	line(true, `reply /4\.7\.(500|650|651)/ mode=backoff`)
	line(false, "</smtp-pattern-list>")
	line(false, "")
	line(false, "<domain *>")
	line(true, "max-smtp-out 20")
	line(true, "retry-after 10m")
	line(true, "bounce-after 4d12h")
	line(false, "</domain>")
	blocks := []struct {
		macro string
		dirs  [][2]string
	}{
		{"gmail", [][2]string{
			{"max-smtp-out", strconv.Itoa(int(poolDefs[poolGmail].conn))},
			{"max-msg-rate", strconv.Itoa(st.gmailRate) + "/h"},
			{"max-msg-per-connection", "100"},
			{"retry-after", "10m"},
			{"smtp-pattern-list", "provider-backoff"},
			{"backoff-max-msg-rate", "600/h"},
			{"backoff-retry-after", "20m"},
			{"backoff-to-normal-after", "1h"},
		}},
		{"yahoo", [][2]string{
			{"max-smtp-out", strconv.Itoa(st.yahooSMTOut)},
			{"max-msg-rate", "3000/h"},
			{"max-msg-per-connection", "20"},
			{"retry-after", "15m"},
			{"smtp-pattern-list", "provider-backoff"},
			{"backoff-max-msg-rate", "300/h"},
			{"backoff-retry-after", "30m"},
			{"backoff-to-normal-after-delivery", "yes"},
			{"bounce-after", "2d"},
		}},
		{"microsoft", [][2]string{
			{"max-smtp-out", strconv.Itoa(int(poolDefs[poolMicrosoft].conn))},
			{"max-msg-rate", "4000/h"},
			{"max-msg-per-connection", "50"},
			{"retry-after", "10m"},
			{"smtp-pattern-list", "provider-backoff"},
			{"backoff-max-msg-rate", "500/h"},
			{"backoff-retry-after", "30m"},
			{"backoff-to-normal-after", "2h"},
		}},
	}
	for _, blk := range blocks {
		if _, ok := groups[blk.macro]; !ok {
			continue // a model too small to hold the provider
		}
		line(false, "<domain $%s>", blk.macro)
		for _, d := range blk.dirs {
			line(true, "%s %s", d[0], d[1])
		}
		line(false, "</domain>")
	}
	return b.String()
}

// renderAcct writes the <acct-file> block(s), as an AcctWriter with the same
// options lays its files out.
func (s *Sim) renderAcct(b *strings.Builder, o ConfigOptions, line func(bool, string, ...any)) {
	dir := o.AcctDir
	if dir == "" {
		dir = "/var/log/pmta"
	}
	types, _ := parseTypes(o.AcctRecords) // validated by WriteConfig
	var main, diag []string
	for _, t := range types {
		if o.AcctSplitDiag && (t == "t" || t == "tq") {
			diag = append(diag, t)
		} else {
			main = append(main, t)
		}
	}
	size := o.AcctMaxSize
	if size <= 0 {
		size = 50 << 20
	}
	file := func(name string, records []string) {
		line(false, "<acct-file %s>", confWord(filepath.Join(dir, name)))
		line(true, "records %s", strings.Join(records, ","))
		if o.AcctMoveTo != "" {
			line(true, "move-to %s", confWord(o.AcctMoveTo))
		}
		line(true, "max-size %s", sizeWord(size))
		line(true, "delete-after 8d")
		line(false, "</acct-file>")
	}
	line(false, "# Accounting")
	if len(main) > 0 {
		file("acct.csv", main)
	}
	if len(diag) > 0 {
		file("diag.csv", diag)
	}
	line(false, "")
}

// poolCount is how many pools have vmtas.
func (s *Sim) poolCount() int {
	n := 0
	for p := range poolDefs {
		if len(s.poolVMTAs(p)) > 0 {
			n++
		}
	}
	return n
}

// confWord writes a value as one word of the config syntax, quoted where
// blanks, quotes or a comment sign would split or cut it.
func confWord(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"#\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// sizeWord writes a byte count in PowerMTA's units, the largest exact one.
func sizeWord(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "b"
}
