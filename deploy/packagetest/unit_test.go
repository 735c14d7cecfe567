package packagetest

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const unitPath = "/usr/lib/systemd/system/pmta-agent.service"

// TestPackagedUnit checks the unit the .deb installs against the rest of the
// package: it is the repository's one unit file; ExecStart runs the packaged
// binary with the packaged configuration; Documentation= names only
// documents the package installs; StateDirectory= is the packaged state
// directory, with the unit's mode and owner; the secrets file is not
// shipped; and systemd verifies the unit with the packaged binary and man
// page in place.
func TestPackagedUnit(t *testing.T) {
	set := packages(t)
	deb, _ := set.host(t)
	root := extractDeb(t, deb)
	b, err := os.ReadFile(filepath.Join(root, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := os.ReadFile(filepath.Join(mustModuleRoot(t), "deploy", "systemd", "pmta-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, repo) {
		t.Error("the packaged unit is not deploy/systemd/pmta-agent.service")
	}
	u, err := parseUnit(b)
	if err != nil {
		t.Fatal(err)
	}

	args := strings.Fields(u.one(t, "ExecStart"))
	if st, err := os.Stat(filepath.Join(root, args[0])); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		t.Errorf("ExecStart=%s: not an executable the package installs (%v)", args[0], err)
	}
	if i := slices.Index(args, "-config"); i < 0 || i+1 >= len(args) || args[i+1] != conffile {
		t.Errorf("ExecStart=%s: want -config %s, the package's conffile", u.one(t, "ExecStart"), conffile)
	}

	docs := strings.Fields(strings.Join(u["Documentation"], " "))
	if len(docs) == 0 {
		t.Error("no Documentation=")
	}
	manURI := regexp.MustCompile(`^man:([^()]+)\(([0-9][a-z]*)\)$`)
	for _, uri := range docs {
		var p string
		if m := manURI.FindStringSubmatch(uri); m != nil {
			p = "/usr/share/man/man" + m[2][:1] + "/" + m[1] + "." + m[2] + ".gz"
		} else if f, ok := strings.CutPrefix(uri, "file:"); ok {
			p = f
		} else {
			t.Errorf("Documentation=%s: neither man: nor file:, so not a document the package installs", uri)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("Documentation=%s: the package does not install %s", uri, p)
		}
	}

	// The state directory as dpkg creates it: the unit's mode, the unit's
	// user and group (which preinst creates: TestMaintainerScripts).
	mode, err := strconv.ParseUint(u.one(t, "StateDirectoryMode"), 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	state := "/var/lib/" + u.one(t, "StateDirectory")
	want := entry{path: state, mode: (os.ModeDir | os.FileMode(mode)).String(), owner: u.one(t, "User") + "/" + u.one(t, "Group")}
	if got := debPaths(t, tool(t, "dpkg-deb", "dpkg"), deb)[state]; got != want {
		t.Errorf("StateDirectory: the package has %+v, the unit wants %+v", got, want)
	}

	for _, f := range u["EnvironmentFile"] {
		p, optional := strings.CutPrefix(f, "-")
		if !optional {
			t.Errorf("EnvironmentFile=%s: the unit must start without it (a leading -)", f)
		}
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("EnvironmentFile=%s: the package ships it; secrets are the administrator's", f)
		}
	}

	// systemd-analyze verify wants the binary at the ExecStart path and
	// checks man: documentation with man(1): point both at the package.
	analyze := tool(t, "systemd-analyze", "systemd")
	unit := filepath.Join(t.TempDir(), "pmta-agent.service")
	bin := filepath.Join(root, "usr", "bin", "pmta-agent")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte(args[0]), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", unit)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(root, "usr", "share", "man"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on unknown keys and bad values but prints them; lines
	// about other units (the host's own setup) are not findings.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "pmta-agent.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// TestManPageNamesEveryCommand holds the packaged man page to the packaged
// binary's usage: every command it lists has its entry.
func TestManPageNamesEveryCommand(t *testing.T) {
	set := packages(t)
	deb, _ := set.host(t)
	root := extractDeb(t, deb)
	usage := run(t, filepath.Join(root, "usr", "bin", "pmta-agent"), "help")
	commands := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+pmta-agent ([a-z-]+)`).FindAllStringSubmatch(usage, -1) {
		commands[m[1]] = true
	}
	if len(commands) < 5 {
		t.Fatalf("found only %v in the usage:\n%s", commands, usage)
	}
	f, err := os.Open(filepath.Join(root, "usr", "share", "man", "man1", "pmta-agent.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(page), `\-`, "-")
	for c := range commands {
		if !regexp.MustCompile(`(?m)^\.B ` + regexp.QuoteMeta(c) + `( |$)`).MatchString(text) {
			t.Errorf("the man page has no entry for %q (deploy/packaging/pmta-agent.1)", c)
		}
	}
}
