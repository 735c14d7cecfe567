#!/bin/sh
# pmta-agent postrm. remove: systemd forgets the unit; whether it was enabled
# is remembered, as Debian does, until purge. purge: the enablement and the
# state directory (checkpoint, queued points) go too. The user and groups
# stay: files elsewhere (logs, ACLs) may still name them.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge pmta-agent.service >/dev/null || true
	fi
	rm -rf /var/lib/pmta-agent
fi
exit 0
