package packagetest

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDebLintianClean runs lintian on each .deb at every level, pedantic
// included, and fails on any tag it reports: the overrides in
// deploy/packaging/lintian-overrides carry their reasons, and an override
// that no longer matches is a tag too (unused-override). One tag is left
// out: spelling-error-in-binary reads the strings of the whole static
// binary, machine code included, where byte runs such as "commad" turn up
// by chance on one architecture and not the other (seen on arm64); the
// agent's own texts are checked in the docs and man page, which stay in.
func TestDebLintianClean(t *testing.T) {
	lintian := tool(t, "lintian", "lintian")
	set := packages(t)
	tag := regexp.MustCompile(`^[EWIPXC]: `)
	for _, arch := range set.arches() {
		t.Run(arch, func(t *testing.T) {
			cmd := exec.Command(lintian, "--display-info", "--display-experimental", "--pedantic",
				"--suppress-tags", "spelling-error-in-binary",
				"--fail-on", "error,warning,info,pedantic,experimental", set.debs[arch])
			out, err := cmd.Output() // stderr: "running with root privileges is not recommended!"
			for _, line := range strings.Split(string(out), "\n") {
				if tag.MatchString(line) {
					t.Errorf("lintian: %s", line)
				}
			}
			if err != nil {
				t.Errorf("lintian %s: %v\n%s", filepath.Base(set.debs[arch]), err, out)
			}
		})
	}
}

// TestDebContents checks the control fields, the conffile and every path of
// each .deb, as dpkg-deb shows them.
func TestDebContents(t *testing.T) {
	dpkgDeb := tool(t, "dpkg-deb", "dpkg")
	set := packages(t)
	deb, _ := set.host(t)
	version := packageVersion(t, extractDeb(t, deb))
	for _, arch := range set.arches() {
		t.Run(arch, func(t *testing.T) {
			deb := set.debs[arch]
			fields := map[string]string{}
			for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Section", "Maintainer", "Description"} {
				fields[f] = strings.TrimSpace(run(t, dpkgDeb, "--field", deb, f))
			}
			for k, want := range map[string]string{"Package": "pmta-agent", "Version": version, "Architecture": arch, "Depends": "passwd"} {
				if fields[k] != want {
					t.Errorf("%s: %q, want %q", k, fields[k], want)
				}
			}
			if !strings.HasPrefix(fields["Description"], "PowerMTA metrics collector") {
				t.Errorf("Description: %q", fields["Description"])
			}
			if want := "pmta-agent_" + version + "_" + arch + ".deb"; filepath.Base(deb) != want {
				t.Errorf("file name %s, want %s", filepath.Base(deb), want)
			}
			if got := run(t, dpkgDeb, "--info", deb, "conffiles"); got != conffile+"\n" {
				t.Errorf("conffiles: %q, want %s alone", got, conffile)
			}
			for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
				if _, err := output(dpkgDeb, "--info", deb, script); err != nil {
					t.Errorf("no %s: %v", script, err)
				}
			}
			checkPaths(t, debPaths(t, dpkgDeb, deb), append(installed, debOnly...))
		})
	}
}

// debPaths reads `dpkg-deb --contents`: mode, owner/group, size, date, time,
// path.
func debPaths(t *testing.T, dpkgDeb, deb string) map[string]entry {
	t.Helper()
	paths := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, dpkgDeb, "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Fatalf("dpkg-deb --contents: unexpected line %q", line)
		}
		p := "/" + strings.Trim(strings.TrimPrefix(f[5], "./"), "/")
		paths[p] = entry{path: p, mode: f[0], owner: f[1]}
	}
	return paths
}

// checkPaths compares what a package holds with what it should: every path
// wanted, with its mode and owner, and nothing else but the directories
// above them, which belong to root and are 0755.
func checkPaths(t *testing.T, got map[string]entry, want []entry) {
	t.Helper()
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.path] = true
		g, ok := got[w.path]
		switch {
		case !ok:
			t.Errorf("%s is missing", w.path)
		case g.mode != w.mode || g.owner != w.owner:
			t.Errorf("%s: %s %s, want %s %s", w.path, g.mode, g.owner, w.mode, w.owner)
		}
	}
	for p, g := range got {
		if wanted[p] || p == "/" {
			continue
		}
		parent := false
		for w := range wanted {
			parent = parent || strings.HasPrefix(w, p+"/")
		}
		if !parent || g.mode != "drwxr-xr-x" || g.owner != "root/root" {
			t.Errorf("unexpected %s %s %s", p, g.mode, g.owner)
		}
	}
}
