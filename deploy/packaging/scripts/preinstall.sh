#!/bin/sh
# pmta-agent preinstall (deb preinst, rpm %pre), before the files are unpacked.
#
# The system user the unit runs as (User=pmta-agent, Group=pmta-agent,
# SupplementaryGroups=pmta): its own group, and a member of PowerMTA's group
# pmta, which on a PowerMTA host owns the accounting files and
# /etc/pmta/config. systemd refuses to start a unit whose groups do not exist,
# so both are created if missing (pmta too: PowerMTA may be installed later).
# Idempotent: what exists already, from an earlier version or made by hand,
# is left as it is. Removal keeps them (files may still belong to them).
set -e

if ! getent group pmta >/dev/null; then
	groupadd --system pmta
fi
if ! getent group pmta-agent >/dev/null; then
	groupadd --system pmta-agent
fi
if ! getent passwd pmta-agent >/dev/null; then
	useradd --system --gid pmta-agent --groups pmta \
		--home-dir /var/lib/pmta-agent --no-create-home \
		--shell /usr/sbin/nologin --comment "pmta-agent (PowerMTA metrics)" \
		pmta-agent
fi
exit 0
