// Package packagetest checks the .deb and .rpm that `make packages` builds
// from deploy/packaging/ the way a package manager and an operator meet them:
// lintian on the .deb; rpm's own queries on the .rpm; the systemd unit
// against the files the packages install; the maintainer scripts on a first
// installation, an upgrade and a removal, each in a private mount namespace
// with the system commands stood in for; and the packaged binary, run from an
// extracted .deb the way the unit runs it, with the packaged configuration
// edited in its one line, against the PowerMTA simulator into a real
// InfluxDB.
//
// The packages are built once per run, for the host's architecture, into a
// temporary directory, or taken from $PMTA_PACKAGES_DIR (.ci/run: all four,
// from `make packages`). A missing tool (lintian, rpm, dpkg-deb,
// systemd-analyze, shellcheck, unshare, influxd) skips the tests that need
// it, or fails them when CI=true.
//
// The package holds only tests; this file exists for the package comment.
package packagetest
