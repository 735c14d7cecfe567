package packagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRPMContents checks each .rpm as rpm shows it (-qip, -qlp,
// --configfiles and the per-file flags): the header, the same paths, modes
// and owners as the .deb, the configuration as %config(noreplace), the
// documentation as %doc, the same unit and binary, and intact digests.
func TestRPMContents(t *testing.T) {
	rpm := tool(t, "rpm", "rpm")
	set := packages(t)
	hostDeb, _ := set.host(t)
	root := extractDeb(t, hostDeb)
	version := packageVersion(t, root)
	ver, rel, _ := strings.Cut(version, "-")
	repo := mustModuleRoot(t)

	for _, arch := range set.arches() {
		t.Run(arch, func(t *testing.T) {
			pkg := set.rpms[arch]
			if want := "pmta-agent-" + version + "." + rpmArch[arch] + ".rpm"; filepath.Base(pkg) != want {
				t.Errorf("file name %s, want %s", filepath.Base(pkg), want)
			}
			info := map[string]string{}
			for _, line := range strings.Split(run(t, rpm, "-qip", pkg), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
					if _, seen := info[strings.TrimSpace(k)]; !seen {
						info[strings.TrimSpace(k)] = strings.TrimSpace(v)
					}
				}
			}
			for k, want := range map[string]string{"Name": "pmta-agent", "Version": ver, "Release": rel,
				"Architecture": rpmArch[arch], "Summary": "PowerMTA metrics collector for InfluxDB and OTLP"} {
				if info[k] != want {
					t.Errorf("rpm -qip: %s %q, want %q", k, info[k], want)
				}
			}

			var paths []string
			for _, e := range installed {
				paths = append(paths, e.path)
			}
			slices.Sort(paths)
			got := strings.Fields(run(t, rpm, "-qlp", pkg))
			slices.Sort(got)
			if !slices.Equal(got, paths) {
				t.Errorf("rpm -qlp:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(paths, "\n"))
			}
			if got := run(t, rpm, "-qp", "--configfiles", pkg); got != conffile+"\n" {
				t.Errorf("rpm --configfiles: %q, want %s alone", got, conffile)
			}

			// One line per file: name, mode, owner, flags, digest.
			files := map[string][]string{}
			qf := `[%{FILENAMES}\t%{FILEMODES:perms}\t%{FILEUSERNAME}/%{FILEGROUPNAME}\t%{FILEFLAGS:fflags}\t%{FILEDIGESTS}\n]`
			for _, line := range strings.Split(strings.TrimRight(run(t, rpm, "-qp", "--queryformat", qf, pkg), "\n"), "\n") {
				f := strings.Split(line, "\t")
				if len(f) != 5 {
					t.Fatalf("rpm --queryformat: %q", line)
				}
				files[f[0]] = f[1:]
			}
			byPath := map[string]entry{}
			for p, f := range files {
				byPath[p] = entry{path: p, mode: f[0], owner: f[1]}
			}
			checkPaths(t, byPath, installed)
			flags := func(p string) string { return files[p][2] }
			if flags(conffile) != "cn" {
				t.Errorf("%s: flags %q, want cn (%%config(noreplace))", conffile, flags(conffile))
			}
			for _, p := range paths {
				var want string
				switch {
				case p == "/usr/share/doc/pmta-agent/copyright":
					want = "l"
				case strings.HasPrefix(p, "/usr/share/"):
					want = "d"
				case p == conffile:
					continue
				}
				if flags(p) != want {
					t.Errorf("%s: flags %q, want %q", p, flags(p), want)
				}
			}

			unit, err := os.ReadFile(filepath.Join(repo, "deploy", "systemd", "pmta-agent.service"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(unit)
			if got := files["/usr/lib/systemd/system/pmta-agent.service"][3]; got != hex.EncodeToString(sum[:]) {
				t.Error("the packaged unit is not deploy/systemd/pmta-agent.service")
			}
			if arch == runtime.GOARCH {
				bin, err := os.ReadFile(filepath.Join(root, "usr", "bin", "pmta-agent"))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(bin)
				if got := files["/usr/bin/pmta-agent"][3]; got != hex.EncodeToString(sum[:]) {
					t.Error("the .rpm's binary is not the .deb's")
				}
			}

			if reqs := strings.Fields(run(t, rpm, "-qpR", pkg)); !slices.Contains(reqs, "shadow-utils") {
				t.Errorf("requires %v: no shadow-utils (useradd, groupadd)", reqs)
			}
			if out := run(t, rpm, "--checksig", "--nosignature", pkg); !strings.HasSuffix(strings.TrimSpace(out), "digests OK") {
				t.Errorf("rpm --checksig: %s", out)
			}
		})
	}
}
