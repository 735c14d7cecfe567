#!/bin/sh
# pmta-agent %preun ($1: how many versions remain; 0 when the package goes
# away, which disables and stops the service, as %systemd_preun does).
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable pmta-agent.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl stop pmta-agent.service >/dev/null 2>&1 || :
	fi
fi
exit 0
