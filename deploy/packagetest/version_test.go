package packagetest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pkgVersion runs deploy/packaging/pkgversion.sh, which turns what the
// Makefile stamps into the binary (git describe) into the packages' version.
func pkgVersion(t *testing.T, describe string) string {
	t.Helper()
	script := filepath.Join(mustModuleRoot(t), "deploy", "packaging", "pkgversion.sh")
	return strings.TrimSpace(run(t, "sh", script, describe))
}

// packageVersion is the version the packages built with the binary in root
// should carry: the binary's own, made a package version, release 1.
func packageVersion(t *testing.T, root string) string {
	t.Helper()
	out := run(t, filepath.Join(root, "usr", "bin", "pmta-agent"), "version")
	f := strings.Fields(out) // pmta-agent VERSION go1.x …
	if len(f) < 2 || f[0] != "pmta-agent" {
		t.Fatalf("pmta-agent version: %q", out)
	}
	return pkgVersion(t, f[1]) + "-1"
}

// TestPackageVersion pins how a git describe becomes a package version,
// that dpkg and rpm take every one, and that both order them as the
// releases are ordered.
func TestPackageVersion(t *testing.T) {
	for _, c := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-5-gabc1234", "1.2.3+git5.abc1234"},
		{"v1.2.3-5-gabc1234-dirty", "1.2.3+git5.abc1234.dirty"},
		{"v1.2.3-rc.1-2-g0123abc", "1.2.3~rc.1+git2.0123abc"},
		{"abc1234", "0.0.0~dev.abc1234"},
		{"1234567-dirty", "0.0.0~dev.1234567.dirty"},
		{"dev", "0.0.0~dev"},
		{"v2.0.0_beta/x", "2.0.0.beta.x"},
	} {
		if got := pkgVersion(t, c.describe); got != c.want {
			t.Errorf("pkgversion.sh %s = %q, want %q", c.describe, got, c.want)
		}
	}
	// rpm takes no hyphen in a version: it separates the release.
	rpmVersion := regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
	ordered := []string{"abc1234", "v0.1.0-rc.1", "v0.1.0-rc.1-2-gabc1234", "v0.1.0", "v0.1.0-3-gabc1234", "v0.1.0-3-gabc1234-dirty", "v0.1.1"}
	var versions []string
	for _, d := range ordered {
		v := pkgVersion(t, d)
		if !rpmVersion.MatchString(v) {
			t.Errorf("%s → %q: not a valid rpm version", d, v)
		}
		versions = append(versions, v)
	}

	dpkg := tool(t, "dpkg", "dpkg")
	rpm := tool(t, "rpm", "rpm")
	for i, v := range versions {
		if _, err := output(dpkg, "--validate-version", v+"-1"); err != nil {
			t.Error(err)
		}
		if i == 0 {
			continue
		}
		prev := versions[i-1]
		if err := exec.Command(dpkg, "--compare-versions", prev, "lt", v).Run(); err != nil {
			t.Errorf("dpkg does not order %s (%s) before %s (%s)", prev, ordered[i-1], v, ordered[i])
		}
		cmp := strings.TrimSpace(run(t, rpm, "--eval", fmt.Sprintf("%%{lua: print(rpm.vercmp('%s', '%s'))}", prev, v)))
		if cmp != "-1" {
			t.Errorf("rpm does not order %s (%s) before %s (%s): vercmp %s", prev, ordered[i-1], v, ordered[i], cmp)
		}
	}
}
