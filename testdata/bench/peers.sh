#!/usr/bin/env bash
# Whole-process benchmark of two peers on the same accounting file as
# backfill.sh: Telegraf (tail input + csv parser -> file output, line
# protocol) and the OpenTelemetry Collector (filelog receiver + csv_parser
# operator -> file exporter, OTLP JSON), both built by peers/build.sh (run
# here; it does nothing when bin/ is up to date, but a cold build of Telegraf
# takes long). Not part of CI.
#   testdata/bench/peers.sh [N] [RUNS]      (defaults 1000000 and 2)
#
# Generates N records with the simulator, then runs each peer RUNS times,
# interleaved, under /usr/bin/time -v. Each reads the whole file from its
# start and writes every record to a file in a private temp dir. peerwatch
# (peers/peerwatch) starts the peer, polls its output every 50 ms, counts the
# records in it (Telegraf: lines starting "pmta_acct,", since a string
# field with a line break is written with the break as is; collector: log
# records, one "observedTimeUnixNano" key each), and when the count reaches N
# sends the peer SIGTERM. Both peers are set to join the lines of a record
# whose quoted dsnDiag holds a line break (the simulator writes some, as
# PowerMTA does); line by line, those records break in two. Reported per run:
#   wall      start to that detection, nothing subtracted; granularity: the
#             50 ms poll plus the peer's output flush (100 ms for both, set
#             below; the defaults are 10 s for Telegraf and 1 s for the file
#             exporter);
#   user/sys  /usr/bin/time for the peer process, start to exit (so including
#             its shutdown after SIGTERM; "exited" gives that time);
#   peak RSS  /usr/bin/time's maximum resident set size;
#   records   the whole output decoded after the peer exited: the line
#             protocol with influxdata/line-protocol/v2 (every point a
#             pmta_acct point with fields and a timestamp), each JSON line
#             with pdata's OTLP JSON unmarshaler (log records counted).
#             The run fails unless it equals N.
# The accounting file is in the page cache for every run, as for backfill.sh.
# Neither peer opens a listener (the collector's own metrics are off).
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1000000}"
runs="${2:-2}"
peers=testdata/bench/peers
[ -x /usr/bin/time ] || { echo "peers.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
"$peers/build.sh" >&2
bin="$(cd "$peers/bin" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/log" "$work/out"
acct="$work/log/acct-2024-01-15-0000.csv"
go run ./cmd/pmta-sim -acct-generate "$n" -domains 200 -vmtas 24 -acct-rate 2000 -acct-out "$acct" >&2

cat >"$work/telegraf.conf" <<CONF
[agent]
  interval = "10s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = 10000
  omit_hostname = true

[[inputs.tail]]
  files = ["$acct"]
  initial_read_offset = "beginning"
  watch_method = "inotify"
  name_override = "pmta_acct"
  data_format = "csv"
  csv_header_row_count = 1
  csv_timestamp_column = "timeLogged"
  csv_timestamp_format = "2006-01-02 15:04:05-0700"
  csv_tag_columns = ["type", "vmta", "dsnAction", "bounceCat"]

  # A record whose quoted field holds a line break (the simulator writes
  # multi-line SMTP replies into dsnDiag, as PowerMTA does) spans lines: join
  # them while a double quote is open.
  [inputs.tail.multiline]
    quotation = "double-quotes"
    match_which_line = "next"
    preserve_newline = true

[[outputs.file]]
  files = ["$work/out/telegraf.lp"]
  data_format = "influx"
CONF

# The header row is read by filelog's header support (beta, on by default)
# into an attribute, which csv_parser takes its column names from; the header
# line itself is not emitted.
cat >"$work/otelcol.yaml" <<CONF
receivers:
  file_log:
    include: [$acct]
    start_at: beginning
    # A record whose quoted field holds a line break spans lines: a record
    # starts with its type and timeLogged. (filelog has no quote-aware
    # splitting; the last record waits for force_flush_period, 500ms.)
    multiline:
      line_start_pattern: '^[a-z]+,\d{4}-\d{2}-\d{2} '
    header:
      pattern: '^type,'
      metadata_operators:
        - type: regex_parser
          regex: '^(?P<acct_header>.*)'
    operators:
      - type: csv_parser
        header_attribute: acct_header
        timestamp:
          parse_from: attributes.timeLogged
          layout_type: gotime
          layout: '2006-01-02 15:04:05-0700'
      - type: remove
        field: attributes.acct_header
exporters:
  file:
    path: $work/out/otelcol.json
    flush_interval: 100ms
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [file_log]
      exporters: [file]
CONF

echo "records: $n ($(($(stat -c %s "$acct") / 1024 / 1024)) MiB); $("$bin/telegraf" --version); otelcol-filelog $("$bin/otelcol-filelog" --version | awk '{print $NF}'); cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

run() { # run NAME FORMAT OUTPUT command...
	local name=$1 format=$2 out=$3
	shift 3
	rm -f "$out" "$work/time.txt"
	local res
	if ! res=$("$bin/peerwatch" -out "$out" -want "$n" -format "$format" -- \
		/usr/bin/time -v -o "$work/time.txt" "$@" 2>"$work/$name.log"); then
		echo "$name: FAILED: $(tail -n 3 "$work/$name.log")" >&2
		exit 1
	fi
	local detect exit records user sys rss
	detect=$(sed -E 's/.*detect=([0-9.]+).*/\1/' <<<"$res")
	exit=$(sed -E 's/.*exit=([0-9.]+).*/\1/' <<<"$res")
	records=$(sed -E 's/.*records=([0-9]+).*/\1/' <<<"$res")
	user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
	sys=$(awk -F': ' '/System time/ {print $2}' "$work/time.txt")
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
	echo "$name: wall ${detect}s  user ${user}s  sys ${sys}s  peak RSS $((rss / 1024)) MiB  records $records  (exited ${exit}s)"
	rm -f "$out"
}

for ((i = 1; i <= runs; i++)); do
	run telegraf lines "$work/out/telegraf.lp" "$bin/telegraf" --config "$work/telegraf.conf"
	run otelcol-filelog otlpjson "$work/out/otelcol.json" "$bin/otelcol-filelog" --config "$work/otelcol.yaml"
done
