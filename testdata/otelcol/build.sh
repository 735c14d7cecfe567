#!/usr/bin/env bash
# Builds the test collector into bin/otelcol: the OTLP receiver and the file
# exporter for the end-to-end tests, plus what deploy/otelcol/gateway.yaml
# uses for the fleet test (otlp_http exporter, memory_limiter, file_storage,
# health_check). Idempotent: does nothing when bin/otelcol is newer than
# go.mod, go.sum and main.go. A cold build takes about two minutes on two
# cores.
set -euo pipefail
cd "$(dirname "$0")"
bin=bin/otelcol
if [[ -x $bin && $bin -nt go.mod && $bin -nt go.sum && $bin -nt main.go ]]; then
	echo "otelcol: $bin is up to date"
	exit 0
fi
echo "otelcol: building $bin"
start=$SECONDS
mkdir -p bin
# go.sum is complete for the build. Tidy with `go mod tidy -e`: the
# fileexporter's own tests import a module the proxy does not serve. (Nor
# does it serve contrib's influxdbexporter, which is why the gateway exports
# OTLP/HTTP to VictoriaMetrics.)
# -buildvcs=false: no VCS stamping, which can fail in CI checkouts.
CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$bin.tmp" .
mv "$bin.tmp" "$bin"
echo "otelcol: built $bin in $((SECONDS - start))s"
