package packagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeCommand stands in for every command a maintainer script uses to change
// the system. It records each call but the queries in $FAKE_LOG, and keeps
// the users and groups it was asked to create in $FAKE_DB ("group NAME",
// "passwd NAME"), which is also what getent answers from. $FAKE_ENABLED (0
// yes, 1 no) is whether the unit was installed and enabled before, as
// deb-systemd-helper remembers it. Shell builtins only: it also runs in the
// throwaway roots of install_test.go, which have nothing but a shell.
const fakeCommand = `#!/bin/sh
name=${0##*/}
case "$name $1" in
"getent "*)
	while read -r kind entry; do
		if [ "$kind $entry" = "$1 $2" ]; then exit 0; fi
	done <"$FAKE_DB"
	exit 2 ;;
"deb-systemd-helper debian-installed" | "deb-systemd-helper --quiet") exit "$FAKE_ENABLED" ;;
esac
echo "$name $*" >>"$FAKE_LOG"
case $name in
groupadd) eval "echo group \${$#}" >>"$FAKE_DB" ;;
useradd) eval "echo passwd \${$#}" >>"$FAKE_DB" ;;
esac
exit 0
`

var fakeCommands = []string{"getent", "groupadd", "useradd", "usermod", "systemctl", "deb-systemd-helper", "deb-systemd-invoke"}

// inNamespace runs a script in a private mount namespace, where /run and
// /var/lib are empty file systems of its own: /run/systemd/system exists
// when $FAKE_SYSTEMD is yes (systemd running), and /var/lib/pmta-agent
// holds a queue. Afterwards it says whether the state directory is still
// there. Nothing the script does reaches the host's /run or /var/lib.
const inNamespace = `set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
if [ "$FAKE_SYSTEMD" = yes ]; then mkdir -p /run/systemd/system; fi
mkdir -p /var/lib/pmta-agent/queue
rc=0
sh "$@" || rc=$?
if [ -d /var/lib/pmta-agent ]; then echo "(state kept)" >>"$FAKE_LOG"; else echo "(state removed)" >>"$FAKE_LOG"; fi
exit $rc
`

const createUser = "useradd --system --gid pmta-agent --groups pmta --home-dir /var/lib/pmta-agent --no-create-home --shell /usr/sbin/nologin --comment pmta-agent (PowerMTA metrics) pmta-agent"

// TestMaintainerScripts runs the maintainer scripts of both packages, as
// packaged, the way dpkg and rpm call them on a first installation, an
// upgrade, a removal and a purge, with systemd running or not, and checks
// what they do: the user and groups the unit names are created once; a
// first installation starts nothing; an upgrade restarts a running service
// and nothing else; a removal stops it; a purge removes the state.
func TestMaintainerScripts(t *testing.T) {
	rpm := tool(t, "rpm", "rpm")
	set := packages(t)
	deb, rpmFile := set.host(t)
	root := extractDeb(t, deb)

	scripts := map[string]string{}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		scripts["deb "+s] = filepath.Join(root, "DEBIAN", s)
	}
	dir := t.TempDir()
	for name, tag := range map[string]string{"%pre": "PREIN", "%post": "POSTIN", "%preun": "PREUN", "%postun": "POSTUN"} {
		p := filepath.Join(dir, strings.TrimPrefix(name, "%")+".sh")
		if err := os.WriteFile(p, []byte(run(t, rpm, "-qp", "--queryformat", "%{"+tag+"}", rpmFile)), 0o644); err != nil {
			t.Fatal(err)
		}
		scripts["rpm "+name] = p
	}

	t.Run("syntax", func(t *testing.T) {
		var all []string
		for _, p := range scripts {
			all = append(all, p)
			if _, err := output("sh", "-n", p); err != nil {
				t.Error(err)
			}
		}
		repo := filepath.Join(mustModuleRoot(t), "deploy", "packaging")
		all = append(all, filepath.Join(repo, "build.sh"), filepath.Join(repo, "pkgversion.sh"))
		slices.Sort(all)
		shellcheck := tool(t, "shellcheck", "shellcheck")
		if out, err := output(shellcheck, append([]string{"--shell=sh"}, all...)...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	})

	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range fakeCommands {
		if err := os.WriteFile(filepath.Join(bin, c), []byte(fakeCommand), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ns := privateNamespace(t)

	const all = "group pmta\ngroup pmta-agent\npasswd pmta-agent\n"
	for _, c := range []struct {
		name, script string
		args         []string
		systemd      bool   // systemd runs
		enabled      bool   // deb-systemd-helper remembers the unit enabled
		db           string // users and groups before
		want         []string
	}{
		{"deb first install without PowerMTA", "deb preinst", []string{"install"}, true, false, "",
			[]string{"groupadd --system pmta", "groupadd --system pmta-agent", createUser, "(state kept)"}},
		{"deb first install on a PowerMTA host", "deb preinst", []string{"install"}, true, false, "group pmta\n",
			[]string{"groupadd --system pmta-agent", createUser, "(state kept)"}},
		{"deb upgrade keeps the user", "deb preinst", []string{"upgrade", "0.1.0-1"}, true, true, all,
			[]string{"(state kept)"}},
		{"deb first configure starts nothing", "deb postinst", []string{"configure", ""}, true, false, all,
			[]string{"deb-systemd-helper update-state pmta-agent.service", "systemctl --system daemon-reload", "(state kept)"}},
		{"deb upgrade restarts a running service", "deb postinst", []string{"configure", "0.1.0-1"}, true, true, all,
			[]string{"deb-systemd-helper enable pmta-agent.service",
				"deb-systemd-helper update-state pmta-agent.service", "systemctl --system daemon-reload",
				"deb-systemd-invoke try-restart pmta-agent.service", "(state kept)"}},
		{"deb configure without systemd", "deb postinst", []string{"configure", "0.1.0-1"}, false, false, all,
			[]string{"deb-systemd-helper update-state pmta-agent.service", "(state kept)"}},
		{"deb upgrade leaves the service to postinst", "deb prerm", []string{"upgrade", "0.2.0-1"}, true, true, all,
			[]string{"(state kept)"}},
		{"deb remove stops the service", "deb prerm", []string{"remove"}, true, true, all,
			[]string{"deb-systemd-invoke stop pmta-agent.service", "(state kept)"}},
		{"deb remove keeps the state", "deb postrm", []string{"remove"}, true, true, all,
			[]string{"systemctl --system daemon-reload", "(state kept)"}},
		{"deb purge removes the state", "deb postrm", []string{"purge"}, true, true, all,
			[]string{"deb-systemd-helper purge pmta-agent.service", "(state removed)"}},

		{"rpm first install", "rpm %pre", []string{"1"}, true, false, "",
			[]string{"groupadd --system pmta", "groupadd --system pmta-agent", createUser, "(state kept)"}},
		{"rpm upgrade keeps the user", "rpm %pre", []string{"2"}, true, false, all,
			[]string{"(state kept)"}},
		{"rpm first install starts nothing", "rpm %post", []string{"1"}, true, false, all,
			[]string{"systemctl daemon-reload", "(state kept)"}},
		{"rpm upgrade: %post restarts nothing", "rpm %post", []string{"2"}, true, false, all,
			[]string{"systemctl daemon-reload", "(state kept)"}},
		{"rpm upgrade: %preun leaves the service", "rpm %preun", []string{"1"}, true, false, all,
			[]string{"(state kept)"}},
		{"rpm erase disables and stops", "rpm %preun", []string{"0"}, true, false, all,
			[]string{"systemctl --no-reload disable pmta-agent.service", "systemctl stop pmta-agent.service", "(state kept)"}},
		{"rpm erase without systemd disables", "rpm %preun", []string{"0"}, false, false, all,
			[]string{"systemctl --no-reload disable pmta-agent.service", "(state kept)"}},
		{"rpm upgrade: the old %postun restarts a running service", "rpm %postun", []string{"1"}, true, false, all,
			[]string{"systemctl daemon-reload", "systemctl try-restart pmta-agent.service", "(state kept)"}},
		{"rpm erase keeps the state", "rpm %postun", []string{"0"}, true, false, all,
			[]string{"systemctl daemon-reload", "(state kept)"}},
		{"rpm erase without systemd", "rpm %postun", []string{"0"}, false, false, all,
			[]string{"(state kept)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			db, log := filepath.Join(work, "db"), filepath.Join(work, "log")
			if err := os.WriteFile(db, []byte(c.db), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(ns[0], append(ns[1:], "sh", "-c", inNamespace, "sh", scripts[c.script])...)
			cmd.Args = append(cmd.Args, c.args...)
			enabled, systemd := "1", "no"
			if c.enabled {
				enabled = "0"
			}
			if c.systemd {
				systemd = "yes"
			}
			cmd.Env = []string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "FAKE_DB=" + db, "FAKE_LOG=" + log,
				"FAKE_ENABLED=" + enabled, "FAKE_SYSTEMD=" + systemd}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", c.script, strings.Join(c.args, " "), err, out)
			}
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, c.want) {
				t.Errorf("%s %s did:\n  %s\nwant:\n  %s", c.script, strings.Join(c.args, " "),
					strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
			if c.db == "" {
				checkUnitUser(t, root, db)
			}
		})
	}
}

// checkUnitUser requires the user and groups the unit runs as to be among
// those the scripts created (systemd does not start a unit whose user or
// group is missing).
func checkUnitUser(t *testing.T, root, db string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(b)
	if err != nil {
		t.Fatal(err)
	}
	created, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Split(strings.TrimSpace(string(created)), "\n")
	want := []string{"passwd " + u.one(t, "User"), "group " + u.one(t, "Group")}
	for _, g := range u["SupplementaryGroups"] {
		for _, name := range strings.Fields(g) {
			want = append(want, "group "+name)
		}
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Errorf("the unit needs %s; the scripts created %v", w, have)
		}
	}
}
