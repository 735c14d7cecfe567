package packagetest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestInstallUpgradeRemove installs the packages with the real dpkg and rpm
// into a throwaway root where systemd counts as running: the package
// managers unpack the files, keep the conffile and run the maintainer
// scripts, which meet the stand-ins of scripts_test.go for useradd,
// systemctl and Debian's helpers. A first installation creates the user and
// starts nothing; the operator's one-line edit of the configuration
// survives an upgrade to a newer version, which restarts the service if it
// runs; a removal stops it and leaves the configuration; dpkg's purge
// removes that and the state too.
func TestInstallUpgradeRemove(t *testing.T) {
	set := packages(t)
	deb, rpmFile := set.host(t)
	newDeb, newRPM := newerPackages(t, deb)
	ns := privateNamespace(t)

	t.Run("dpkg", func(t *testing.T) {
		dpkg := tool(t, "dpkg", "dpkg")
		r := newThrowawayRoot(t, ns)
		for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
			r.mkdir(d)
		}
		r.write("var/lib/dpkg/available", "")
		// Depends: passwd, which every Debian system has.
		r.write("var/lib/dpkg/status", "Package: passwd\nStatus: install ok installed\nPriority: required\n"+
			"Version: 1:4.13+dfsg1-1\nArchitecture: "+runtime.GOARCH+"\nMaintainer: stand-in\nDescription: stand-in\n\n")
		install := func(args ...string) { r.run(t, dpkg, append([]string{"--root=" + r.dir}, args...)...) }

		install("--install", deb)
		r.calls(t, "dpkg -i", "groupadd --system pmta", "groupadd --system pmta-agent", createUser,
			"deb-systemd-helper update-state pmta-agent.service", "systemctl --system daemon-reload")
		r.exists(t, "/usr/bin/pmta-agent", unitPath, "/var/lib/pmta-agent")
		edited := r.editConfig(t)

		install("--install", newDeb)
		r.calls(t, "dpkg -i of a newer version", "deb-systemd-helper update-state pmta-agent.service",
			"systemctl --system daemon-reload", "deb-systemd-invoke try-restart pmta-agent.service")
		r.config(t, edited, "after the upgrade")
		r.onlyConfig(t)

		r.write("var/lib/pmta-agent/queue/influx.0", "queued points")
		install("--remove", "pmta-agent")
		r.calls(t, "dpkg -r", "deb-systemd-invoke stop pmta-agent.service", "systemctl --system daemon-reload")
		r.gone(t, "/usr/bin/pmta-agent", unitPath)
		r.config(t, edited, "after dpkg -r")
		r.exists(t, "/var/lib/pmta-agent/queue/influx.0")

		install("--purge", "pmta-agent")
		r.calls(t, "dpkg --purge", "deb-systemd-helper purge pmta-agent.service")
		r.gone(t, conffile, "/var/lib/pmta-agent")
	})

	t.Run("rpm", func(t *testing.T) {
		rpm := tool(t, "rpm", "rpm")
		r := newThrowawayRoot(t, ns)
		// --nodeps: the root's database knows no shadow-utils, nor /bin/sh.
		install := func(args ...string) {
			r.run(t, rpm, append([]string{"--root=" + r.dir, "--dbpath=/var/lib/rpm", "--nodeps"}, args...)...)
		}
		r.run(t, rpm, "--root="+r.dir, "--dbpath=/var/lib/rpm", "--initdb")

		install("--install", rpmFile)
		r.calls(t, "rpm -i", "groupadd --system pmta", "groupadd --system pmta-agent", createUser, "systemctl daemon-reload")
		r.exists(t, "/usr/bin/pmta-agent", unitPath, "/var/lib/pmta-agent")
		edited := r.editConfig(t)

		install("--upgrade", newRPM)
		// The new version's %post, then the old one's %postun.
		r.calls(t, "rpm -U of a newer version", "systemctl daemon-reload", "systemctl daemon-reload",
			"systemctl try-restart pmta-agent.service")
		r.config(t, edited, "after the upgrade")
		r.onlyConfig(t)

		r.write("var/lib/pmta-agent/queue/influx.0", "queued points")
		install("--erase", "pmta-agent")
		r.calls(t, "rpm -e", "systemctl --no-reload disable pmta-agent.service", "systemctl stop pmta-agent.service",
			"systemctl daemon-reload")
		r.gone(t, "/usr/bin/pmta-agent", unitPath, conffile)
		// rpm keeps an edited configuration as .rpmsave.
		if got := r.read(t, conffile+".rpmsave"); got != edited {
			t.Errorf("%s.rpmsave after rpm -e:\n%s\nwant the edited file", conffile, got)
		}
		r.exists(t, "/var/lib/pmta-agent/queue/influx.0")
	})
}

// newerPackages builds the next version of the packages, v99.0.0, around
// the same binary, with the documented build script.
func newerPackages(t *testing.T, deb string) (string, string) {
	t.Helper()
	dist := t.TempDir()
	bin, err := os.ReadFile(filepath.Join(extractDeb(t, deb), "usr", "bin", "pmta-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "pmta-agent-linux-"+runtime.GOARCH), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, filepath.Join(mustModuleRoot(t), "deploy", "packaging", "build.sh"), dist, "v99.0.0", runtime.GOARCH)
	set, err := findPackages(filepath.Join(dist, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	return set.host(t)
}

// throwawayRoot is the smallest root a package manager can install into and
// run maintainer scripts in: a shell, rm (for postrm), /dev/null, the
// stand-in commands, and /run/systemd/system, which says systemd runs.
type throwawayRoot struct {
	t   *testing.T
	dir string
	ns  []string // privateNamespace
}

func newThrowawayRoot(t *testing.T, ns []string) *throwawayRoot {
	t.Helper()
	r := &throwawayRoot{t: t, dir: t.TempDir(), ns: ns}
	r.copyProgram("/bin/sh")
	r.copyProgram("/bin/rm")
	for _, d := range []string{"dev", "tmp", "var/tmp", "run/systemd/system", "usr/sbin", "fake"} {
		r.mkdir(d)
	}
	r.write("dev/null", "")
	r.write("fake/db", "")
	for _, c := range fakeCommands {
		r.write("usr/sbin/"+c, fakeCommand)
		if err := os.Chmod(filepath.Join(r.dir, "usr", "sbin", c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// copyProgram copies a program of the host and the libraries it loads into
// the root, each to its own path.
func (r *throwawayRoot) copyProgram(path string) {
	r.t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		r.t.Fatal(err)
	}
	files := []string{real}
	if out, err := exec.Command("ldd", real).Output(); err == nil { // not for a static program
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		r.copyFile(f, f)
	}
	if real != path {
		r.copyFile(real, path)
	}
}

func (r *throwawayRoot) copyFile(from, to string) {
	r.t.Helper()
	in, err := os.Open(from)
	if err != nil {
		r.t.Fatal(err)
	}
	defer in.Close()
	r.mkdir(filepath.Dir(to))
	out, err := os.OpenFile(filepath.Join(r.dir, to), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		r.t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *throwawayRoot) mkdir(d string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *throwawayRoot) write(p, text string) {
	r.t.Helper()
	r.mkdir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(r.dir, p), []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *throwawayRoot) read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// run runs a package manager in the private namespace, with the host's
// /dev/null inside the root.
func (r *throwawayRoot) run(t *testing.T, name string, args ...string) {
	t.Helper()
	script := `mount --bind /dev/null "$0/dev/null" && exec "$@"`
	cmd := exec.Command(r.ns[0], append(r.ns[1:], append([]string{"sh", "-c", script, r.dir, name}, args...)...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C",
		"FAKE_DB=/fake/db", "FAKE_LOG=/fake/log", "FAKE_ENABLED=1"}
	// No terminal: a question (dpkg about a conffile) fails the command.
	cmd.Stdin = nil
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// calls requires the stand-ins to have been called so since the last check.
func (r *throwawayRoot) calls(t *testing.T, what string, want ...string) {
	t.Helper()
	log := filepath.Join(r.dir, "fake", "log")
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var got []string
	if s := strings.TrimSpace(string(b)); s != "" {
		got = strings.Split(s, "\n")
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s called:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if err := os.RemoveAll(log); err != nil {
		t.Fatal(err)
	}
}

func (r *throwawayRoot) exists(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(r.dir, p)); err != nil {
			t.Errorf("%s is not there: %v", p, err)
		}
	}
}

func (r *throwawayRoot) gone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(r.dir, p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
}

// editConfig makes the operator's one edit: the InfluxDB URL.
func (r *throwawayRoot) editConfig(t *testing.T) string {
	t.Helper()
	orig := r.read(t, conffile)
	edited := strings.Replace(orig, `url: ""`, `url: "http://influx.example.internal:8086"`, 1)
	if changedLines([]byte(orig), []byte(edited)) != 1 {
		t.Fatalf("the one-line edit does not apply to\n%s", orig)
	}
	r.write(conffile, edited)
	return edited
}

// config requires the configuration to read as want.
func (r *throwawayRoot) config(t *testing.T, want, when string) {
	t.Helper()
	if got := r.read(t, conffile); got != want {
		t.Errorf("%s %s:\n%s\nwant the edited file:\n%s", conffile, when, got, want)
	}
}

// onlyConfig requires /etc/pmta-agent to hold the configuration alone: no
// .dpkg-dist, .dpkg-new, .rpmnew beside it.
func (r *throwawayRoot) onlyConfig(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(r.dir, filepath.Dir(conffile)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{filepath.Base(conffile)}) {
		t.Errorf("%s holds %v", filepath.Dir(conffile), names)
	}
}
