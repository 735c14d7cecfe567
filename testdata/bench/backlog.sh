#!/usr/bin/env bash
# Whole-process benchmark of a sink outage: one hour of accounting at 1,000
# records/s is tailed by a real agent while a real InfluxDB is down, then
# InfluxDB comes back and the backlog drains. Prints the drain speed against
# real time and the agent's peak RSS. Needs influxd (see the README).
#   testdata/bench/backlog.sh [seconds] [records-per-second]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"
report="$(mktemp)"
PMTA_BENCH_BACKLOG=1 PMTA_BENCH_BACKLOG_SECONDS="${1:-3600}" PMTA_BENCH_BACKLOG_RATE="${2:-1000}" \
  PMTA_BENCH_REPORT="$report" go test -count=1 -run TestBacklogDrainBenchmark -timeout 30m ./cmd/pmta-agent >&2
cat "$report"
