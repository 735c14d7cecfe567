#!/usr/bin/env bash
# Whole-process benchmark of `pmta-agent backfill` with the stdout sink:
# generates N accounting records with the simulator (default 1,000,000),
# backfills them under /usr/bin/time -v, checks that the pmta_acct counts sum
# to N exactly, and prints wall time, CPU, peak RSS and records/s.
#   testdata/bench/backfill.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

go build -o "$work/pmta-agent" ./cmd/pmta-agent
go build -o "$work/pmta-sim" ./cmd/pmta-sim
"$work/pmta-sim" -acct-generate "$n" -acct-out "$work/acct-2024-01-15-0000.csv" >&2
size=$(stat -c %s "$work/acct-2024-01-15-0000.csv")

timer=(/usr/bin/time -v)
[ -x /usr/bin/time ] || { echo "note: /usr/bin/time not found (apt-get install time); timing with bash only" >&2; timer=(); }
"${timer[@]}" "$work/pmta-agent" backfill -quiet "$work/acct-2024-01-15-0000.csv" >"$work/out.lp" 2>"$work/time.txt"

sum=$(grep '^pmta_acct,' "$work/out.lp" | sed -E 's/.* count=([0-9]+)i.*/\1/' | awk '{s+=$1} END {print s+0}')
summary=$(grep '^backfill:' "$work/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
sys=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")

echo "records generated: $n ($((size / 1024 / 1024)) MiB)"
echo "$summary"
echo "pmta_acct count sum: $sum"
[ -n "$wall" ] && echo "wall: $wall  user: ${user}s  sys: ${sys}s  peak RSS: $((rss / 1024)) MiB"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if [ "$sum" != "$n" ]; then
  echo "FAIL: counts sum to $sum, want $n" >&2
  exit 1
fi
