// Package otlp is the sink that exports points as OpenTelemetry metrics over
// OTLP, gRPC or HTTP/protobuf, to a collector or any OTLP backend.
//
// It uses the OpenTelemetry Go SDK's exporters (otlpmetricgrpc,
// otlpmetrichttp) directly, without a MeterProvider: each Write builds
// metricdata.ResourceMetrics from the points and calls Export, so every data
// point keeps its point's own timestamps — a replay after an outage arrives
// with its original times. The exporters' own retries are off: the delivery
// loop owns retries, back-off and the durable queue; this package sends and
// classifies failures (see classify).
//
// # Configuration
//
// Config is the sinks.otlp section of the configuration file (its koanf
// tags are the keys), apart from the buffer subsection; DefaultConfig holds
// its defaults and Config.Validate its checks, each problem starting with
// its key. The config package composes them, and checks itself what needs
// other sections: the agent's state_dir, under which the wiring sets
// StateDir for cumulative temporality.
//
// # Mapping
//
// Metric names: pmta.<measurement without its "pmta_" prefix>.<field>.
//
//	pmta_status.queue_rcp  → pmta.status.queue_rcp
//	pmta_acct.count        → pmta.acct.count
//	pmta_acct_diag.count   → pmta.acct_diag.count
//	pmta_agent.errors      → pmta.agent.errors
//
// Units (UCUM, as OpenTelemetry uses them), from the field's words:
// {recipient} for rcp and recipient counts (delivered, deferred), By for
// bytes, KiBy for kb, s for seconds (uptime_s, queued_s_sum, queued_s_max,
// *_unix), {connection} for conn*, 1 for flags (up, paused, backoff,
// shutting_down), {record} for the count of pmta_acct, its other views and pmta_acct_diag,
// {domain}, {message}, {file} where the name says so, % for *_pct, and
// <unit>/s for *_per_sec ({recipient}/s, KiBy/s, {message}/s). Anything
// else is 1.
//
// Attributes: every tag with a key and a value becomes a data point
// attribute, server included; an empty tag is absent. Resource: one per
// distinct server tag, with service.name=pmta-agent,
// service.version=<Config.Version>, host.name=<server>, plus
// Config.Resource (which may override service.name and service.version;
// host.name comes from the server tag whenever the points have one). The
// instrumentation scope is github.com/pmta-agent/pmta-agent. A Write whose
// points come from several servers sends one export per run of consecutive
// points of one server.
//
// Every string that goes into a request — metric names, attribute keys and
// values, resource attributes, host.name, the version — passes through
// agent.SafeTag: invalid UTF-8 becomes U+FFFD, control characters spaces,
// and a value longer than agent.MaxTagBytes is cut and ends with a hash.
// Protobuf refuses to encode a string that is not valid UTF-8, so without
// this one stray byte in a recipient domain would make every retry of its
// batch fail. Tag values that sanitize alike are one series.
//
// Types:
//   - pmta_acct, every other view of the accounting (pmta_acct_*) and
//     pmta_acct_diag count, bytes, queued_s_sum: monotonic
//     Sums. The point's time is the interval start; its int64 field
//     interval_s (10 when absent) gives the length. interval_s is metadata
//     and is not exported. With delta temporality (the default) a data
//     point has StartTime = interval start and Time = start + interval_s.
//   - With cumulative temporality the sink keeps a running total per series
//     (metric name and attributes) in Config.StateDir, written atomically
//     (temporary file, fsync, rename, fsync of the directory) after each
//     write, so totals survive restarts. A data point then has StartTime =
//     the series' first interval start and Time = interval start +
//     interval_s, and carries the total. Replays: a series remembers the
//     start of the last interval it added; a point whose interval does not
//     start after it (a replay after a crash, or a backfill of older files)
//     is skipped — its value is already in the total, and an older time
//     with a newer total would break the series — and counted in the
//     replays_skipped stat. Backfill therefore needs delta temporality. A
//     series idle for 7 days is forgotten, and starts again from zero with
//     a new StartTime (a reset to OTLP readers) if it comes back. An
//     unreadable state file is moved aside and every series restarts.
//     Totals are committed only when the collector took an export
//     (including a partial success), never after a failure: the delivery
//     loop sends the same points again — a batch refused for good in
//     halves, to find the points to dead-letter — and they must add the
//     same intervals again.
//   - queued_s_max: Gauge at the point's time (the interval start).
//   - *_total fields of the polled measurements (PowerMTA's own counters,
//     e.g. pmta_status.out_rcp_total): cumulative monotonic Sums whatever
//     the configured temporality, with StartTime = point time − uptime_s
//     when the point has uptime_s (PowerMTA's start, so a PowerMTA restart
//     shows as a reset), else no start time.
//   - Everything else — polled levels, rates, pmta_agent — is a Gauge at
//     the point's time.
//   - int64 values are int data points, float64 values double data points,
//     bool values 0/1 ints; string fields, NaN and ±Inf (which line
//     protocol leaves out too, and which would poison a cumulative total)
//     and fields with an empty key are not exported (counted in the
//     fields_unsupported stat).
//
// Points OTLP cannot carry are refused for good, never exported with a
// wrong time nor counted as written: a point whose time is not after
// 1970-01-01 or is after 2262-04-11 (OTLP times are nanoseconds since 1970;
// time.Time.UnixNano wraps beyond 2262), an accounting point whose interval
// ends after 2262-04-11, and a point with no field that becomes a data
// point. Write sends the points before such a point and returns a Permanent
// error for the rest, so that the delivery loop isolates it and writes it to
// its dead-letter file. An interval_s or uptime_s that is negative or over a
// century is ignored (the default interval; no start time).
//
// With delta temporality a replayed batch is exported again with the same
// start and end times; backends that keep one value per series and time
// (Prometheus-style stores) take it as the same sample.
//
// # Errors
//
// Write stops at the first export that fails, whatever the kind, and
// reports with agent.WithProgress how many leading points the exports
// before it delivered; it never counts a point the collector did not take.
// classify maps gRPC codes, HTTP statuses and the exporters' own failures
// to agent.SinkError kinds; see its doc comment for the table. Failures that
// can only repeat for the same points — a request the exporter cannot
// encode, gRPC InvalidArgument, HTTP 400 — are Permanent; connection
// problems are retryable. A partial success is not a failure: the collector
// kept the rest of the export, and sending it again would count delta sums
// twice, so it counts as written, and the data points it rejected are
// counted in the rejected_data_points stat. Header values are never logged
// nor left in an error's text.
//
// # Logging
//
// Failed and refused writes are the delivery loop's to log, once per
// episode, with the sink's Endpoint; the sink logs none of them. It logs
// only what it alone sees, each kind at most once a minute through its own
// ratelog.Episode, with the number of occurrences held back: data points
// rejected in a partial success, a partial success with a warning, a 2xx
// answer that could not be read, replays skipped in cumulative mode, a
// cumulative state that could not be saved (and, once at start-up, one
// that was unreadable and moved aside).
package otlp
