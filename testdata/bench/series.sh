#!/usr/bin/env bash
# Series and points per day: generates one day of accounting records for a
# small, a medium and a large sender with the simulator (Zipf-weighted
# recipient domains routed through per-provider pools of vmtas, one source IP
# each), backfills each with the default views and with the full cross
# product, and counts the distinct series (measurement + tag set, one
# server) per measurement. Those backfills use 1 h intervals to keep the
# output small: a series is a tag set, which the interval length does not
# change (the domain view's daily cap admits by volume either way). A third
# backfill with the default 10 s intervals counts the points a day, whose
# rate is what the server's agent writes for its accounting.
#   testdata/bench/series.sh [profile...]   (default: small medium large)
# A profile is name:records-per-day:domains:vmtas.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(small:500000:200:10 medium:5000000:1000:50 large:26000000:5000:200)

go build -o "$work/pmta-agent" ./cmd/pmta-agent
go build -o "$work/pmta-sim" ./cmd/pmta-sim
cat >"$work/default.yaml" <<EOF
sinks: {influx: {enabled: false}, stdout: {enabled: true}}
EOF
cat >"$work/full.yaml" <<EOF
acct:
  views: [{name: pmta_acct_full, tags: [type, domain, isp, vmta, pool, source_ip, bounce_cat, dsn_class]}]
pipeline: {max_domains: 1000000, max_vmtas: 1000000, max_source_ips: 1000000}
sinks: {influx: {enabled: false}, stdout: {enabled: true}}
EOF
# series FILE MEASUREMENT: distinct tag sets of one measurement.
series() { grep "^$2," "$1" | cut -d' ' -f1 | sort -u | wc -l; }

printf '| sender | records/day | domains | vmtas = IPs | pmta_acct | pmta_acct_domain | pmta_acct_diag | pmta_acct* series/day | full cross product | pmta_acct* points/s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for p in "${profiles[@]}"; do
  IFS=: read -r name records domains vmtas <<<"$p"
  rate=$(awk -v n="$records" 'BEGIN {printf "%.6f", n / 86400}')
  file="$work/acct-$name.csv"
  "$work/pmta-sim" -acct-generate "$records" -domains "$domains" -vmtas "$vmtas" -acct-rate "$rate" -acct-out "$file" >&2
  "$work/pmta-agent" backfill -quiet -interval 1h -config "$work/default.yaml" "$file" >"$work/default.lp" 2>/dev/null
  "$work/pmta-agent" backfill -quiet -interval 1h -config "$work/full.yaml" "$file" >"$work/full.lp" 2>/dev/null
  points=$("$work/pmta-agent" backfill -quiet -config "$work/default.yaml" "$file" 2>&1 >/dev/null |
    sed -nE 's/.*sink stdout: ([0-9]+) points written.*/\1/p')
  rm -f "$file"
  a=$(series "$work/default.lp" pmta_acct)
  d=$(series "$work/default.lp" pmta_acct_domain)
  g=$(series "$work/default.lp" pmta_acct_diag)
  f=$(series "$work/full.lp" pmta_acct_full)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$records" "$domains" "$vmtas" "$a" "$d" "$g" "$((a + d + g))" "$((f + g))" \
    "$(awk -v p="$points" 'BEGIN {printf "%.1f", p / 86400}')"
done
