#!/bin/sh
# pmta-agent %post ($1: how many versions are installed now; 1 on a first
# installation). The service is neither enabled nor started: the
# configuration must say where the data goes first. On an upgrade the old
# version's %postun restarts it if it runs, as the systemd RPM macros do.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
