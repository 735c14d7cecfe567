#!/bin/sh
# pkgversion.sh VERSION: the package version for a `git describe` (what the
# Makefile stamps into the binary), valid for dpkg and rpm alike and ordered
# as the releases are:
#   v1.2.3              1.2.3
#   v1.2.3-rc.1         1.2.3~rc.1            (before 1.2.3)
#   v1.2.3-5-gabc1234   1.2.3+git5.abc1234    (after 1.2.3)
#   abc1234 (no tag)    0.0.0~dev.abc1234     (before any release)
#   dev                 0.0.0~dev
# A -dirty suffix becomes .dirty. No hyphen survives: dpkg would read the part
# after it as the Debian revision, and rpm refuses it.
set -eu
v=${1#v}
dirty=
case $v in *-dirty) v=${v%-dirty} dirty=.dirty ;; esac
v=$(printf '%s\n' "$v" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+git\1.\2/')
case $v in
dev) v=0.0.0~dev ;;
[0-9]*.[0-9]*) ;;
*) v=0.0.0~dev.$v ;;
esac
v=$(printf '%s' "$v$dirty" | tr -- '-' '~' | tr -c 'A-Za-z0-9.+~' '.')
printf '%s\n' "$v"
