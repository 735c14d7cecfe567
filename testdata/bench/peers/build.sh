#!/usr/bin/env bash
# Builds the peers for ../peers.sh into bin/ (git-ignored), from the Go module
# proxy:
#   bin/otelcol-filelog  this module: the OpenTelemetry Collector (core
#                        v0.165.0 / v1.71.0, contrib v0.165.1) with only the
#                        filelog receiver and the file exporter;
#   bin/peerwatch        this module's ./peerwatch, which stops a peer once
#                        its output holds every record;
#   bin/telegraf         `go install github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION`
#                        (default v1.37.2), the full build with every plugin,
#                        as a release ships it.
# Idempotent: each is rebuilt only when missing or older than its sources
# (telegraf: when missing or of another version). Cold, on two cores: the
# collector takes about two minutes, Telegraf about 28 minutes (thousands of
# packages). Not part of CI.
#   testdata/bench/peers/build.sh
set -euo pipefail
cd "$(dirname "$0")"
telegraf_version="${TELEGRAF_VERSION:-v1.37.2}"
mkdir -p bin
export CGO_ENABLED=0

# go.sum is complete for the build. Tidy with `go mod tidy -e`: the
# fileexporter's own tests import a module the proxy does not serve.
build() { # build OUT PKG SOURCE
	local out=$1 pkg=$2 src=$3 start=$SECONDS
	if [[ -x $out && $out -nt go.mod && $out -nt go.sum && $out -nt $src ]]; then
		echo "peers: $out is up to date"
		return
	fi
	echo "peers: building $out"
	go build -trimpath -buildvcs=false -o "$out.tmp" "$pkg"
	mv "$out.tmp" "$out"
	echo "peers: built $out in $((SECONDS - start))s"
}
build bin/otelcol-filelog . main.go
build bin/peerwatch ./peerwatch peerwatch/main.go

if [[ -x bin/telegraf ]] && bin/telegraf --version 2>/dev/null | grep -qw "^Telegraf ${telegraf_version#v}"; then
	echo "peers: bin/telegraf ${telegraf_version} is up to date"
else
	echo "peers: go install github.com/influxdata/telegraf/cmd/telegraf@${telegraf_version}"
	start=$SECONDS
	# Outside this module, so that its go.mod plays no part; -X sets the
	# version that `telegraf --version` prints, as Telegraf's Makefile does.
	(cd / && GOBIN="$OLDPWD/bin" GOFLAGS=-buildvcs=false go install \
		-ldflags "-X github.com/influxdata/telegraf/internal.Version=${telegraf_version#v}" \
		"github.com/influxdata/telegraf/cmd/telegraf@${telegraf_version}")
	echo "peers: installed bin/telegraf in $((SECONDS - start))s"
fi
bin/telegraf --version
