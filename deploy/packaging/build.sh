#!/bin/sh
# build.sh DIST VERSION ARCH...: the .deb and .rpm of pmta-agent for each ARCH
# (amd64, arm64) from DIST/pmta-agent-linux-ARCH, which `make dist` builds,
# into DIST/packages/. `make packages` runs it; nfpm.yaml says what goes in.
# NFPM overrides the pinned nfpm (built from the Go module proxy, cached
# after the first run).
set -eu
cd "$(dirname "$0")/../.." # the module root: nfpm.yaml's paths start there
[ $# -ge 3 ] || { echo "usage: $0 DIST VERSION ARCH..." >&2; exit 2; }
dist=$1 version=$2
shift 2
: "${NFPM:=go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}"

PKG_VERSION=$(deploy/packaging/pkgversion.sh "$version")
# Reproducible packages: every time stamp is the commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
DIST=$dist
export DIST PKG_VERSION SOURCE_DATE_EPOCH

out=$dist/packages
build=$out/build
rm -rf "$build" "$out"/*.deb "$out"/*.rpm "$out"/SHA256SUMS
mkdir -p "$build"

gzip -9n <deploy/packaging/pmta-agent.1 >"$build/pmta-agent.1.gz"
# Debian wants a changelog. The project's is its git history: one entry
# saying what this package was built from.
maintainer=$(sed -n 's/^maintainer: //p' deploy/packaging/nfpm.yaml)
{
	printf 'pmta-agent (%s-1) unstable; urgency=medium\n\n' "$PKG_VERSION"
	printf '  * Built from %s; the changes are in the project'\''s git history.\n\n' "$version"
	printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$build/changelog.Debian.gz"

for arch in "$@"; do
	for packager in deb rpm; do
		# shellcheck disable=SC2086 # NFPM is a command line
		ARCH=$arch $NFPM package --config deploy/packaging/nfpm.yaml \
			--packager "$packager" --target "$out/"
	done
done
(cd "$out" && sha256sum -- *.deb *.rpm >SHA256SUMS)
