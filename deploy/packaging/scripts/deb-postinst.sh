#!/bin/sh
# pmta-agent postinst: debhelper's steps (dh_installsystemd) for a unit that
# is neither enabled nor started on installation, and restarted on upgrade if
# it runs. A first installation starts nothing: /etc/pmta-agent/pmta-agent.yaml
# must say where the data goes first.
set -e

case "$1" in
configure | abort-upgrade | abort-deconfigure | abort-remove)
	if deb-systemd-helper debian-installed pmta-agent.service; then
		if deb-systemd-helper --quiet was-enabled pmta-agent.service; then
			# New symlinks, if the unit's [Install] changed.
			deb-systemd-helper enable pmta-agent.service >/dev/null || true
		fi
	fi
	# Remember the symlinks, for purge.
	deb-systemd-helper update-state pmta-agent.service >/dev/null || true
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		# $2: the version configured before; empty on a first installation.
		if [ -n "$2" ]; then
			deb-systemd-invoke try-restart pmta-agent.service >/dev/null || true
		fi
	fi
	;;
esac
exit 0
