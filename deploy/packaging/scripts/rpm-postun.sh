#!/bin/sh
# pmta-agent %postun ($1: how many versions remain). Runs for the version
# being replaced or removed, after the files of the new one are in place: an
# upgrade restarts the service if it runs, as %systemd_postun_with_restart
# does. The state directory stays (RPM has no purge).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart pmta-agent.service >/dev/null 2>&1 || :
	fi
fi
exit 0
