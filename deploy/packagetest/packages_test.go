package packagetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pmta-agent/pmta-agent/internal/servertest"
)

// pkgSet is the packages under test, each by its Debian architecture name.
type pkgSet struct {
	dir  string
	debs map[string]string
	rpms map[string]string
}

// rpmArch is rpm's name for a Debian architecture.
var rpmArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// built is the one build of a test run, shared by the tests that need it.
var built struct {
	once sync.Once
	tmp  string // removed by TestMain
	set  pkgSet
	err  error
}

func TestMain(m *testing.M) {
	m.Run()
	if built.tmp != "" {
		os.RemoveAll(built.tmp)
	}
}

// packages returns the packages under test: those in $PMTA_PACKAGES_DIR, or
// `make packages` for the host's architecture into a temporary directory,
// once per run.
func packages(t *testing.T) pkgSet {
	t.Helper()
	built.once.Do(func() {
		dir := os.Getenv("PMTA_PACKAGES_DIR")
		if dir == "" {
			if built.tmp, built.err = os.MkdirTemp("", "packagetest-"); built.err != nil {
				return
			}
			if built.err = makePackages(built.tmp, runtime.GOARCH); built.err != nil {
				return
			}
			dir = filepath.Join(built.tmp, "packages")
		}
		built.set, built.err = findPackages(dir)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.set
}

// makePackages runs the documented command, for one architecture, with
// dist/ in a directory of the test's own.
func makePackages(dist, arch string) error {
	if _, ok := rpmArch[arch]; !ok {
		return fmt.Errorf("no packages for %s: make packages builds amd64 and arm64", arch)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("make", "-C", root, "--no-print-directory", "packages", "PLATFORMS=linux/"+arch, "DIST="+dist)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make packages: %w\n%s", err, out)
	}
	return nil
}

// findPackages collects the .deb and .rpm files in dir, one of each per
// architecture at most.
func findPackages(dir string) (pkgSet, error) {
	set := pkgSet{dir: dir, debs: map[string]string{}, rpms: map[string]string{}}
	for arch, ra := range rpmArch {
		for _, f := range []struct {
			pattern string
			into    map[string]string
		}{{"pmta-agent_*_" + arch + ".deb", set.debs}, {"pmta-agent-*." + ra + ".rpm", set.rpms}} {
			m, err := filepath.Glob(filepath.Join(dir, f.pattern))
			if err != nil {
				return set, err
			}
			switch len(m) {
			case 0:
			case 1:
				f.into[arch] = m[0]
			default:
				return set, fmt.Errorf("%s: more than one %s: %v", dir, f.pattern, m)
			}
		}
	}
	if len(set.debs) == 0 || len(set.rpms) == 0 || len(set.debs) != len(set.rpms) {
		return set, fmt.Errorf("%s: want a .deb and an .rpm per architecture, have %v and %v", dir, set.debs, set.rpms)
	}
	return set, nil
}

// host returns the packages of the host's architecture, which the tests can
// run.
func (s pkgSet) host(t *testing.T) (deb, rpm string) {
	t.Helper()
	deb, rpm = s.debs[runtime.GOARCH], s.rpms[runtime.GOARCH]
	if deb == "" || rpm == "" {
		t.Fatalf("%s holds no packages for this host's %s", s.dir, runtime.GOARCH)
	}
	return deb, rpm
}

// arches returns the architectures of the set, sorted.
func (s pkgSet) arches() []string {
	var a []string
	for arch := range s.debs {
		a = append(a, arch)
	}
	slices.Sort(a)
	return a
}

// moduleRoot is the directory of the go.mod this package belongs to: go
// test runs in the package's directory.
func moduleRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	return root, nil
}

func mustModuleRoot(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool returns the path of a command a test needs; without it the test is
// skipped, or fails under CI=true, where .ci/run installs it.
func tool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		servertest.Missing(t, fmt.Sprintf("%s is not installed (apt-get install %s)", name, debianPackage))
	}
	return p
}

// run runs a command and returns its standard output; a failure fails the
// test with what the command said.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := output(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// output runs a command and returns its standard output, or an error with
// its standard error.
func output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out), nil
}

// extractDeb unpacks a .deb as dpkg would, into a fresh directory, with its
// control files (the maintainer scripts among them) in DEBIAN/.
func extractDeb(t *testing.T, deb string) string {
	t.Helper()
	dpkgDeb := tool(t, "dpkg-deb", "dpkg")
	root := t.TempDir()
	run(t, dpkgDeb, "-x", deb, root)
	run(t, dpkgDeb, "-e", deb, filepath.Join(root, "DEBIAN"))
	return root
}

// unitFile is a systemd unit as key → values, in order, sections ignored:
// the unit's keys are unique across its sections.
type unitFile map[string][]string

func parseUnit(b []byte) (unitFile, error) {
	u := unitFile{}
	var errs []error
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("unit line %q is not key=value", line))
			continue
		}
		u[k] = append(u[k], v)
	}
	return u, errors.Join(errs...)
}

// one returns the single value of key, failing the test unless there is
// exactly one.
func (u unitFile) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("unit: %s=%q, want exactly one", key, u[key])
	}
	return u[key][0]
}

// entry is one path a package installs.
type entry struct {
	path  string
	mode  string // as ls -l shows it
	owner string // user/group
}

// installed is what both packages put on the system, besides the
// directories above these paths.
var installed = []entry{
	{"/usr/bin/pmta-agent", "-rwxr-xr-x", "root/root"},
	{"/usr/lib/systemd/system/pmta-agent.service", "-rw-r--r--", "root/root"},
	{"/etc/pmta-agent", "drwxr-xr-x", "root/root"},
	{"/etc/pmta-agent/pmta-agent.yaml", "-rw-r--r--", "root/root"},
	{"/var/lib/pmta-agent", "drwx------", "pmta-agent/pmta-agent"},
	{"/usr/share/man/man1/pmta-agent.1.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/pmta-agent/INSTALL.md", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/pmta-agent/README.md", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/pmta-agent/pmta-agent.example.yaml", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/pmta-agent/copyright", "-rw-r--r--", "root/root"},
}

// debOnly is what only the .deb installs: Debian's changelog and the
// reasons for lintian's overrides.
var debOnly = []entry{
	{"/usr/share/doc/pmta-agent/changelog.Debian.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/lintian/overrides/pmta-agent", "-rw-r--r--", "root/root"},
}

// conffile is the configuration the package manager keeps on upgrade.
const conffile = "/etc/pmta-agent/pmta-agent.yaml"

// privateNamespace returns the command that runs another in a mount
// namespace of its own, as root there: unshare, with a user namespace unless
// the test runs as root. Without one the test is skipped, or fails under
// CI=true.
func privateNamespace(t *testing.T) []string {
	t.Helper()
	ns := []string{tool(t, "unshare", "util-linux"), "--user", "--map-root-user", "--mount"}
	if os.Geteuid() == 0 {
		ns = []string{ns[0], "--mount"}
	}
	probe := exec.Command(ns[0], append(ns[1:], "sh", "-c", "mount -t tmpfs tmpfs /run")...)
	if out, err := probe.CombinedOutput(); err != nil {
		servertest.Missing(t, fmt.Sprintf("no private mount namespace here (%s: %v: %s): run as root, or allow unprivileged user namespaces",
			strings.Join(ns, " "), err, bytes.TrimSpace(out)))
	}
	return ns
}
