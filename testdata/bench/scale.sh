#!/usr/bin/env bash
# Whole-process benchmark on a file with many tag sets: a sender with many
# domains, vmtas and source IPs (default 1,000,000 records over 500 s of log
# time from 200 domains and 24 vmtas/IPs: ~2,300 tag sets per 10 s
# interval). Measures, under /usr/bin/time -v, with the stdout sink:
#   backfill   `pmta-agent backfill` of the file;
#   catch-up   `pmta-agent run` tailing the file from its start, until every
#              record is emitted (read from /metrics), then SIGTERM.
# and checks that the pmta_acct counts sum to the records written. Binaries
# are built as `make dist` builds them (static, stripped). With
# PMTA_BENCH_BASE=<git revision>, that revision's agent runs too, alternating
# with this tree's, on the same file.
#   testdata/bench/scale.sh [records] [domains] [vmtas] [records-per-second] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1000000}"
domains="${2:-200}"
vmtas="${3:-24}"
rate="${4:-2000}"
runs="${5:-1}"
work="$(mktemp -d)"
agent_pid=""
trap '[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

build() { CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@"; }
build "$work/pmta-agent" ./cmd/pmta-agent
build "$work/pmta-sim" ./cmd/pmta-sim
agents=(pmta-agent)
if [ -n "${PMTA_BENCH_BASE:-}" ]; then
  mkdir "$work/base"
  git archive "$PMTA_BENCH_BASE" | tar -x -C "$work/base"
  (cd "$work/base" && build "$work/base-agent" ./cmd/pmta-agent)
  agents=(base-agent pmta-agent)
fi
file="$work/log/acct-2024-01-15-0000.csv"
mkdir -p "$work/log"
"$work/pmta-sim" -acct-generate "$n" -domains "$domains" -vmtas "$vmtas" -acct-rate "$rate" -acct-out "$file" >&2
size=$(stat -c %s "$file")

# Tag sets of the full cross product per interval, from a backfill with the
# full view only.
cat >"$work/full.yaml" <<EOF
acct:
  views: [{name: pmta_acct_full, tags: [type, domain, isp, vmta, pool, source_ip, bounce_cat, dsn_class]}]
sinks: {influx: {enabled: false}, stdout: {enabled: true}}
EOF
"$work/pmta-agent" backfill -quiet -config "$work/full.yaml" "$file" >"$work/full.lp" 2>/dev/null
tagsets=$(grep -c '^pmta_acct_full,' "$work/full.lp")
distinct=$(grep '^pmta_acct_full,' "$work/full.lp" | cut -d' ' -f1 | sort -u | wc -l)
intervals=$(grep '^pmta_acct_full,' "$work/full.lp" | awk '{print $NF}' | sort -u | wc -l)
rm -f "$work/full.lp"

report() { # label time-file
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$2")
  user=$(awk -F': ' '/User time/ {print $2}' "$2")
  sys=$(awk -F': ' '/System time/ {print $2}' "$2")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$2")
  echo "$1: wall $wall  user ${user}s  sys ${sys}s  peak RSS $((rss / 1024)) MiB"
}
acct_sum() { grep '^pmta_acct,' "$1" | sed -E 's/.* count=([0-9]+)i.*/\1/' | awk '{s+=$1} END {print s+0}'; }

echo "file: $n records ($((size / 1024 / 1024)) MiB), $domains domains, $vmtas vmtas/IPs, $rate records/s of log time"
echo "tag sets (full cross product): $distinct distinct, $((tagsets / intervals)) per 10 s interval over $intervals intervals"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
for run in $(seq "$runs"); do
  for agent in "${agents[@]}"; do
    label="$agent"; [ "$agent" = base-agent ] && label="base ${PMTA_BENCH_BASE}"
    /usr/bin/time -v "$work/$agent" backfill -quiet "$file" >"$work/out.lp" 2>"$work/time.txt"
    sum=$(acct_sum "$work/out.lp")
    [ "$sum" = "$n" ] || { echo "FAIL: $label backfill counts sum to $sum, want $n" >&2; exit 1; }
    report "$label backfill" "$work/time.txt"

    rm -rf "$work/state"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/run.yaml" <<EOF
server: bench
state_dir: $work/state
listen: {enabled: true, address: 127.0.0.1:$port}
api: {enabled: false}
acct: {enabled: true, globs: ["$work/log/*.csv"], start_at: beginning, max_age: 0}
sinks:
  influx: {enabled: false}
  stdout: {enabled: true}
EOF
    /usr/bin/time -v "$work/$agent" run -config "$work/run.yaml" >"$work/out.lp" 2>"$work/time.txt" &
    agent_pid=$!
    for _ in $(seq 1200); do
      sleep 0.05
      # Prometheus prints 1e+06; compare as numbers.
      emitted=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null |
        awk '/^pmta_agent_records_emitted_total\{component="acct"/ {printf "%d", $2}' || true)
      [ "${emitted:-0}" = "$n" ] && break
    done
    # /usr/bin/time is the child; signal the agent under it.
    pkill -TERM -P "$agent_pid" || true
    wait "$agent_pid" || true
    agent_pid=""
    sum=$(acct_sum "$work/out.lp")
    [ "$sum" = "$n" ] || { echo "FAIL: $label catch-up counts sum to $sum, want $n (emitted ${emitted:-?})" >&2; exit 1; }
    report "$label catch-up" "$work/time.txt"
  done
done
