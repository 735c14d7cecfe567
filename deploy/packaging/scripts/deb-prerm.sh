#!/bin/sh
# pmta-agent prerm: stop the service when the package goes away. An upgrade
# leaves it running: the postinst of the new version restarts it.
set -e

if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop pmta-agent.service >/dev/null || true
fi
exit 0
