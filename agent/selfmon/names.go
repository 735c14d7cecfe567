package selfmon

// family is how /metrics exposes one field: the name of its Prometheus
// family, its HELP text, whether it is a counter, and the factor that turns
// the field's value into the family's base unit (0 means 1).
//
// The names follow Prometheus's conventions (promtool check metrics holds
// them to it): counters end in _total, units are base units spelled out
// before that suffix — _seconds, _bytes, _timestamp_seconds for Unix times,
// _ratio for fractions. The field names of the InfluxDB and OTLP data are
// not these: only the exposition renames, and scales, what it shows.
type family struct {
	name    string
	help    string
	counter bool
	scale   float64
}

// kib turns PowerMTA's kb columns into bytes: PowerMTA counts KBytes of
// 1024 bytes (the OTLP sink sends the same fields with the unit KiBy).
const kib = 1024

// selfFamilies describes every field a component of the agent reports
// (agent.StatsReporter), each exposed as pmta_agent_<name>{component="…"}.
// A field shared by components (errors, last_success_unix) means the same
// kind of thing in each, and has one description. A field not listed here
// is still exposed, as a gauge with a generic help, and logged once;
// TestEveryWiredFieldDescribed in cmd/pmta-agent, which reads /metrics of
// an agent with every component wired, keeps the list complete.
//
// The disk queue's own bytes, entries and points are not here: the
// delivery that owns the queue reports them as queued_bytes, queued_entries
// and queued_points.
var selfFamilies = map[string]family{
	// api: the poller.
	"polls":  {name: "polls_total", counter: true, help: "Rounds of polls of PowerMTA's HTTP API (component api)."},
	"errors": {name: "errors_total", counter: true, help: "Failed requests to PowerMTA's endpoints (api), failed writes to the sink (sink_*), or checks of PowerMTA's configuration that could not read or parse it (pmta_config)."},
	// pmta_config: the watcher of PowerMTA's configuration.
	"checks":            {name: "checks_total", counter: true, help: "Checks of PowerMTA's configuration files for changes (component pmta_config)."},
	"changes":           {name: "changes_total", counter: true, help: "Changes found in PowerMTA's configuration, each a pmta_event point of kind config_change (component pmta_config)."},
	"events_folded":     {name: "events_folded_total", counter: true, help: "Changes beyond the per-check bound, counted in one summary event (component pmta_config)."},
	"files":             {name: "files", help: "Files of PowerMTA's configuration watched: the main file and what it includes (component pmta_config)."},
	"last_check_unix":   {name: "last_check_timestamp_seconds", help: "Unix time of the last check of PowerMTA's configuration (component pmta_config); 0 before the first."},
	"last_change_unix":  {name: "last_change_timestamp_seconds", help: "Unix time of the last change found in PowerMTA's configuration (component pmta_config); 0 before the first."},
	"last_error_unix":   {name: "last_error_timestamp_seconds", help: "Unix time of the last check that could not read or parse PowerMTA's configuration (component pmta_config); 0 before the first."},
	"last_success_unix": {name: "last_success_timestamp_seconds", help: "Unix time of the last round in which every endpoint answered (api), or of the last write the sink accepted (sink_*); 0 before the first."},
	"last_duration_s":   {name: "last_duration_seconds", help: "How long the last round of polls took (component api)."},
	"up":                {name: "up", help: "1 if every endpoint of PowerMTA's HTTP API answered in the last round, else 0 (component api)."},
	"pmta_restarts":     {name: "pmta_restarts_total", counter: true, help: "PowerMTA restarts and counter resets seen between rounds (component api)."},
	"rows_skipped":      {name: "rows_skipped_total", counter: true, help: "Listing rows that could not be read, or were beyond the rows kept per listing (component api)."},
	"fields_missing":    {name: "fields_missing_total", counter: true, help: "Documented keys absent or unreadable in the seed dialect's status.json, one per key and round (component api)."},

	// pmta_config with the accounting source on: the impact of each change.
	"impact_runs":          {name: "impact_runs_total", counter: true, help: "Analyses of a configuration change's impact made, provisional and final, each a set of pmta_impact points (component pmta_config)."},
	"impact_errors":        {name: "impact_errors_total", counter: true, help: "Analyses of a configuration change's impact that could not read the accounting files (component pmta_config)."},
	"impact_pending":       {name: "impact_pending", help: "Configuration changes whose final impact report is still to come (component pmta_config)."},
	"impact_last_run_unix": {name: "impact_last_run_timestamp_seconds", help: "Unix time of the last analysis of a configuration change's impact (component pmta_config); 0 before the first."},

	// acct: the accounting tailer.
	"lines_read":               {name: "lines_read_total", counter: true, help: "Lines read from the accounting files (component acct)."},
	"records_read":             {name: "records_read_total", counter: true, help: "Data rows read from the accounting files by this process (component acct)."},
	"records":                  {name: "records_total", counter: true, help: "Accounting records aggregated into intervals (component acct)."},
	"records_restored":         {name: "records_restored", help: "Records in the open intervals of the checkpoint this process started from (component acct)."},
	"records_emitted":          {name: "records_emitted_total", counter: true, help: "Records in the points of closed intervals (component acct)."},
	"records_open":             {name: "records_open", help: "Records in intervals still open (component acct)."},
	"malformed":                {name: "malformed_total", counter: true, help: "Accounting rows that could not be read as records (component acct)."},
	"out_of_range":             {name: "out_of_range_total", counter: true, help: "Records refused for their timeLogged, for any reason (component acct)."},
	"out_of_range_future":      {name: "out_of_range_future_total", counter: true, help: "Records refused for a timeLogged later than the clock by more than the allowed skew (component acct)."},
	"out_of_range_old":         {name: "out_of_range_old_total", counter: true, help: "Records refused for a timeLogged older than the horizon while tailing (component acct)."},
	"out_of_range_invalid":     {name: "out_of_range_invalid_total", counter: true, help: "Records refused for an implausible timeLogged, before 1990 or after 2200 (component acct)."},
	"late":                     {name: "late_total", counter: true, help: "Records added to a later interval than their own, theirs already emitted (component acct)."},
	"files_open":               {name: "files_open", help: "Accounting files held open (component acct)."},
	"files_done":               {name: "files_done_total", counter: true, help: "Accounting files gone (deleted or rotated away) and forgotten after being read to their end (component acct)."},
	"truncations":              {name: "truncations_total", counter: true, help: "Accounting files found truncated or rewritten, read again from the start (component acct)."},
	"files_held_as_copies":     {name: "files_held_as_copies", help: "Accounting files not read for holding only the start of another one, as a copy being written (component acct)."},
	"bytes_read":               {name: "read_bytes_total", counter: true, help: "Bytes read from the accounting files (component acct)."},
	"tail_lag_bytes":           {name: "tail_lag_bytes", help: "Bytes of the accounting files not read yet (component acct)."},
	"tail_lag_s":               {name: "tail_lag_seconds", help: "Age of the oldest unread accounting data; 0 when nothing is unread (component acct)."},
	"diag_folded":              {name: "diag_folded_total", counter: true, help: "Diagnostic patterns folded into diag=other beyond acct.top_diag (component acct)."},
	"last_checkpoint_unix":     {name: "last_checkpoint_timestamp_seconds", help: "Unix time the accounting checkpoint was last written (component acct)."},
	"last_commit_unix":         {name: "last_commit_timestamp_seconds", help: "Unix time the accounting resume point last moved, every earlier batch confirmed; 0 before the first (component acct)."},
	"pending_cuts":             {name: "pending_cuts", help: "Emitted accounting batches not yet confirmed by every sink (component acct)."},
	"checkpoint_corrupt":       {name: "checkpoint_corrupt_total", counter: true, help: "Accounting checkpoints found damaged and set aside (component acct)."},
	"checkpoint_errors":        {name: "checkpoint_errors_total", counter: true, help: "Failed writes of the accounting checkpoint (component acct)."},
	"read_errors":              {name: "read_errors_total", counter: true, help: "Failed reads of the accounting files (acct) or of the disk queue (sink_*)."},
	"problems":                 {name: "problems", help: "Accounting directories and files of the globs that cannot be read (component acct)."},
	"verdict_points":           {name: "verdict_points_total", counter: true, help: "pmta_verdict points made from the accounting records (component acct)."},
	"verdict_ip_specific":      {name: "verdict_ip_specific", help: "Source IPs and pools whose last verdict was ip_specific (component acct)."},
	"verdict_pool_wide":        {name: "verdict_pool_wide", help: "Source IPs and pools whose last verdict was pool_wide (component acct)."},
	"verdict_dropped_attempts": {name: "verdict_dropped_attempts_total", counter: true, help: "Delivery attempts left out of the verdicts because their ISP, pool and source IP found the window full (component acct)."},

	// pipeline.
	"batches":            {name: "batches_total", counter: true, help: "Batches that went through the pipeline (component pipeline)."},
	"points":             {name: "points_total", counter: true, help: "Points that went through the pipeline (component pipeline)."},
	"domains_folded":     {name: "domains_folded_total", counter: true, help: "Domain tag values folded into other beyond their cap (component pipeline)."},
	"vmtas_folded":       {name: "vmtas_folded_total", counter: true, help: "VirtualMTA tag values folded into other beyond their cap (component pipeline)."},
	"pools_folded":       {name: "pools_folded_total", counter: true, help: "Pool tag values folded into other beyond their cap (component pipeline)."},
	"source_ips_folded":  {name: "source_ips_folded_total", counter: true, help: "Source IP tag values folded into other beyond their cap (component pipeline)."},
	"bounce_cats_folded": {name: "bounce_cats_folded_total", counter: true, help: "Bounce category tag values folded into other beyond their cap (component pipeline)."},
	"diags_folded":       {name: "diags_folded_total", counter: true, help: "Diagnostic tag values folded into other beyond their cap (component pipeline)."},
	"values_sanitized":   {name: "values_sanitized_total", counter: true, help: "Tag values changed to be safe for every sink: invalid UTF-8, control characters, length (component pipeline)."},
	"points_merged":      {name: "points_merged_total", counter: true, help: "Points merged into another of the same series and time (component pipeline)."},

	// sink_<name>: a sink's delivery and its buffer.
	"queued_points":        {name: "queued_points", help: "Points waiting in the sink's buffer (sink_*)."},
	"queued_entries":       {name: "queued_entries", help: "Entries (batches) waiting in the sink's buffer (sink_*)."},
	"queued_bytes":         {name: "queued_bytes", help: "Bytes on disk of what waits in the sink's disk queue; 0 for a memory buffer (sink_*)."},
	"recovered_points":     {name: "recovered_points", help: "Points waiting in the buffer when the delivery started, as after a restart (sink_*)."},
	"enqueued_points":      {name: "enqueued_points_total", counter: true, help: "Points handed to the sink's buffer (sink_*)."},
	"written_points":       {name: "written_points_total", counter: true, help: "Points the sink accepted (sink_*)."},
	"dropped_rejected":     {name: "dropped_rejected_total", counter: true, help: "Points the sink refused for good and that no dead-letter file kept (sink_*)."},
	"dead_lettered_points": {name: "dead_lettered_points_total", counter: true, help: "Points the sink refused for good, kept in its dead-letter file (sink_*)."},
	"dropped_points":       {name: "dropped_points_total", counter: true, help: "Points lost to the buffer's bound or to a store that kept refusing appends (sink_*)."},
	"dropped_entries":      {name: "dropped_entries_total", counter: true, help: "Buffer entries dropped by the buffer's bound, or unreadable after a restart (sink_*)."},
	"dropped_first_unix":   {name: "dropped_first_timestamp_seconds", help: "Unix time of the oldest point the buffer dropped; 0 while none was (sink_*)."},
	"dropped_last_unix":    {name: "dropped_last_timestamp_seconds", help: "Unix time of the newest point the buffer dropped; 0 while none was (sink_*)."},
	"dropped_unstored":     {name: "dropped_unstored_total", counter: true, help: "Dropped points that a store refusing appends never took (sink_*)."},
	"retained_entries":     {name: "retained_entries", help: "Entries held in memory while the store refuses appends (sink_*)."},
	"append_errors":        {name: "append_errors_total", counter: true, help: "Failed appends to the sink's buffer (sink_*)."},
	"splits":               {name: "splits_total", counter: true, help: "Batches split in halves to find the points the sink refuses (sink_*)."},
	"failing_since_unix":   {name: "failing_since_timestamp_seconds", help: "Unix time the sink's writes started failing; 0 while they succeed (sink_*)."},
	"write_duration_s":     {name: "write_duration_seconds", help: "How long the last write to the sink took (sink_*)."},
	"quarantined_files":    {name: "quarantined_files_total", counter: true, help: "Damaged disk queue files set aside (sink_*)."},
	"sync_errors":          {name: "sync_errors_total", counter: true, help: "Failed fsyncs of the disk queue (sink_*)."},
	"write_errors":         {name: "write_errors_total", counter: true, help: "Failed writes to the disk queue (sink_*)."},

	// otlp_export: the OTLP sink's own.
	"data_points":          {name: "data_points_total", counter: true, help: "OTLP data points in exports the collector took (component otlp_export)."},
	"replays_skipped":      {name: "replays_skipped_total", counter: true, help: "Accounting intervals skipped as replays in cumulative mode (component otlp_export)."},
	"fields_unsupported":   {name: "fields_unsupported_total", counter: true, help: "Fields not sent for not being finite numbers (component otlp_export)."},
	"state_errors":         {name: "state_errors_total", counter: true, help: "Failed saves of the cumulative state (component otlp_export)."},
	"rejected_data_points": {name: "rejected_data_points_total", counter: true, help: "OTLP data points the collector rejected in a partial success (component otlp_export)."},
}

// pmtaFamilies describes PowerMTA's values that Latest keeps, by
// measurement and field: the polled ones (pmta_status, pmta_queue,
// pmta_domain, pmta_vmta: the latest poll's values; PowerMTA's own running
// totals as counters) and the agent's running totals of the accounting
// counts. A field not listed is exposed as a gauge named
// <measurement>_<field> with a generic help, and logged once.
var pmtaFamilies = map[pmtaField]family{
	{"pmta_status", "up"}:                     {name: "pmta_status_up", help: "1 if every endpoint of PowerMTA's HTTP API answered in the last round of polls, else 0."},
	{"pmta_status", "queue_rcp"}:              {name: "pmta_status_queue_rcp", help: "Recipients in PowerMTA's SMTP queue."},
	{"pmta_status", "queue_domains"}:          {name: "pmta_status_queue_domains", help: "Domains in PowerMTA's SMTP queue."},
	{"pmta_status", "queue_kb"}:               {name: "pmta_status_queue_bytes", scale: kib, help: "Size of PowerMTA's SMTP queue, in bytes (PowerMTA's KBytes times 1024)."},
	{"pmta_status", "queue_other_rcp"}:        {name: "pmta_status_queue_other_rcp", help: "Recipients in PowerMTA's other queues (pipe, discard, file, alias, bounce and feedback-loop processors)."},
	{"pmta_status", "conn_in"}:                {name: "pmta_status_conn_in", help: "Inbound SMTP connections open."},
	{"pmta_status", "conn_in_max"}:            {name: "pmta_status_conn_in_max", help: "Inbound SMTP connections allowed."},
	{"pmta_status", "conn_in_top"}:            {name: "pmta_status_conn_in_top", help: "Most inbound SMTP connections open at once since PowerMTA started."},
	{"pmta_status", "conn_out"}:               {name: "pmta_status_conn_out", help: "Outbound SMTP connections open."},
	{"pmta_status", "conn_out_max"}:           {name: "pmta_status_conn_out_max", help: "Outbound SMTP connections allowed."},
	{"pmta_status", "conn_out_top"}:           {name: "pmta_status_conn_out_top", help: "Most outbound SMTP connections open at once since PowerMTA started."},
	{"pmta_status", "conn_active"}:            {name: "pmta_status_conn_active", help: "SMTP connections open (seed dialect)."},
	{"pmta_status", "out_rcp_total"}:          {name: "pmta_status_out_rcp_total", counter: true, help: "Recipients delivered since PowerMTA started."},
	{"pmta_status", "out_msg_total"}:          {name: "pmta_status_out_msg_total", counter: true, help: "Messages delivered since PowerMTA started."},
	{"pmta_status", "out_kb_total"}:           {name: "pmta_status_out_bytes_total", counter: true, scale: kib, help: "Bytes delivered since PowerMTA started (PowerMTA's KBytes times 1024)."},
	{"pmta_status", "in_rcp_total"}:           {name: "pmta_status_in_rcp_total", counter: true, help: "Recipients received since PowerMTA started."},
	{"pmta_status", "in_msg_total"}:           {name: "pmta_status_in_msg_total", counter: true, help: "Messages received since PowerMTA started."},
	{"pmta_status", "in_kb_total"}:            {name: "pmta_status_in_bytes_total", counter: true, scale: kib, help: "Bytes received since PowerMTA started (PowerMTA's KBytes times 1024)."},
	{"pmta_status", "out_rcp_last_min"}:       {name: "pmta_status_out_rcp_last_min", help: "Recipients delivered in the last minute, as PowerMTA counts them."},
	{"pmta_status", "out_rcp_last_hr"}:        {name: "pmta_status_out_rcp_last_hr", help: "Recipients delivered in the last hour, as PowerMTA counts them."},
	{"pmta_status", "in_rcp_last_min"}:        {name: "pmta_status_in_rcp_last_min", help: "Recipients received in the last minute, as PowerMTA counts them."},
	{"pmta_status", "in_rcp_last_hr"}:         {name: "pmta_status_in_rcp_last_hr", help: "Recipients received in the last hour, as PowerMTA counts them."},
	{"pmta_status", "bounce_processed_total"}: {name: "pmta_status_bounce_processed_total", counter: true, help: "Bounce messages processed since PowerMTA started."},
	{"pmta_status", "fbl_processed_total"}:    {name: "pmta_status_fbl_processed_total", counter: true, help: "Feedback-loop reports processed since PowerMTA started."},
	{"pmta_status", "resolver_pending"}:       {name: "pmta_status_resolver_pending", help: "DNS queries waiting in PowerMTA's resolver."},
	{"pmta_status", "resolver_active"}:        {name: "pmta_status_resolver_active", help: "DNS queries under way in PowerMTA's resolver."},
	{"pmta_status", "resolver_names_cached"}:  {name: "pmta_status_resolver_names_cached", help: "Names in PowerMTA's DNS cache."},
	{"pmta_status", "spool_rcp"}:              {name: "pmta_status_spool_rcp", help: "Recipients in PowerMTA's spool."},
	{"pmta_status", "spool_max_rcp"}:          {name: "pmta_status_spool_max_rcp", help: "Recipients PowerMTA's spool can hold."},
	{"pmta_status", "spool_files_in_use"}:     {name: "pmta_status_spool_files_in_use", help: "Spool files in use."},
	// spool_files_total is a size, not a running total: no _total here.
	{"pmta_status", "spool_files_total"}: {name: "pmta_status_spool_files", help: "Spool files PowerMTA has, in use or not."},
	{"pmta_status", "spool_init_pct"}:    {name: "pmta_status_spool_init_ratio", scale: 0.01, help: "How much of the spool PowerMTA has read at start-up, from 0 to 1."},
	{"pmta_status", "shutting_down"}:     {name: "pmta_status_shutting_down", help: "1 while PowerMTA shuts down, else 0."},
	{"pmta_status", "uptime_s"}:          {name: "pmta_status_uptime_seconds", help: "Time since PowerMTA started."},
	{"pmta_status", "out_rcp_per_sec"}:   {name: "pmta_status_out_rcp_per_second", help: "Recipients delivered per second between the last two rounds of polls (seed: as PowerMTA reports it)."},
	{"pmta_status", "in_rcp_per_sec"}:    {name: "pmta_status_in_rcp_per_second", help: "Recipients received per second between the last two rounds of polls."},
	{"pmta_status", "out_kb_per_sec"}:    {name: "pmta_status_out_bytes_per_second", scale: kib, help: "Bytes delivered per second between the last two rounds of polls (PowerMTA's KBytes times 1024)."},
	{"pmta_status", "in_msg_per_sec"}:    {name: "pmta_status_in_msg_per_second", help: "Messages received per second between the last two rounds of polls."},

	{"pmta_queue", "rcp"}:     {name: "pmta_queue_rcp", help: "Recipients in the queue of a domain and VirtualMTA."},
	{"pmta_queue", "kb"}:      {name: "pmta_queue_bytes", scale: kib, help: "Size of the queue of a domain and VirtualMTA, in bytes (PowerMTA's KBytes times 1024)."},
	{"pmta_queue", "conn"}:    {name: "pmta_queue_conn", help: "SMTP connections open for the queue of a domain and VirtualMTA."},
	{"pmta_queue", "paused"}:  {name: "pmta_queue_paused", help: "1 if the queue is paused, else 0; in domain=other, the folded queues that are."},
	{"pmta_queue", "backoff"}: {name: "pmta_queue_backoff", help: "1 if the queue is in backoff mode, else 0; in domain=other, the folded queues that are."},

	{"pmta_domain", "rcp"}:       {name: "pmta_domain_rcp", help: "Recipients queued for a domain."},
	{"pmta_domain", "kb"}:        {name: "pmta_domain_bytes", scale: kib, help: "Size of what is queued for a domain, in bytes (PowerMTA's KBytes times 1024)."},
	{"pmta_domain", "conn"}:      {name: "pmta_domain_conn", help: "SMTP connections open to a domain."},
	{"pmta_domain", "delivered"}: {name: "pmta_domain_delivered_total", counter: true, help: "Recipients delivered to a domain, as the seed dialect's listing counts them."},
	{"pmta_domain", "deferred"}:  {name: "pmta_domain_deferred_total", counter: true, help: "Recipients deferred for a domain, as the seed dialect's listing counts them."},

	{"pmta_vmta", "rcp"}:          {name: "pmta_vmta_rcp", help: "Recipients queued on a VirtualMTA."},
	{"pmta_vmta", "kb"}:           {name: "pmta_vmta_bytes", scale: kib, help: "Size of what is queued on a VirtualMTA, in bytes (PowerMTA's KBytes times 1024)."},
	{"pmta_vmta", "conn"}:         {name: "pmta_vmta_conn", help: "SMTP connections open from a VirtualMTA."},
	{"pmta_vmta", "domains"}:      {name: "pmta_vmta_domains", help: "Domains queued on a VirtualMTA."},
	{"pmta_vmta", "msgs_per_sec"}: {name: "pmta_vmta_msgs_per_second", help: "Messages per second sent from a VirtualMTA (seed dialect)."},

	{"pmta_acct", "count"}:      {name: "pmta_acct_count_total", counter: true, help: "Accounting records counted by the agent since it started, per record type, ISP, VirtualMTA, pool and source IP."},
	{"pmta_acct", "bytes"}:      {name: "pmta_acct_bytes_total", counter: true, help: "Bytes (dlvSize) of the accounting records counted by the agent since it started."},
	{"pmta_acct_diag", "count"}: {name: "pmta_acct_diag_count_total", counter: true, help: "Accounting records counted by the agent since it started, per record type, ISP and diagnostic pattern."},

	{"pmta_verdict", "verdict"}:           {name: "pmta_verdict_verdict", help: "IP vs pool verdict of the last window, per ISP and pool (scope=pool) and source IP (scope=ip): 0 ok, 1 ip_specific, 2 pool_wide, -1 too few attempts."},
	{"pmta_verdict", "attempts"}:          {name: "pmta_verdict_attempts", help: "Delivery attempts (d, t and b records) in the verdict's window."},
	{"pmta_verdict", "deferred"}:          {name: "pmta_verdict_deferred", help: "Deferrals (t records) in the verdict's window."},
	{"pmta_verdict", "bounced"}:           {name: "pmta_verdict_bounced", help: "Bounces (b records) in the verdict's window."},
	{"pmta_verdict", "deferral_pct"}:      {name: "pmta_verdict_deferral_ratio", scale: 0.01, help: "Deferred share of the attempts in the verdict's window, from 0 to 1."},
	{"pmta_verdict", "bounce_pct"}:        {name: "pmta_verdict_bounce_ratio", scale: 0.01, help: "Bounced share of the attempts in the verdict's window, from 0 to 1."},
	{"pmta_verdict", "pool_deferral_pct"}: {name: "pmta_verdict_pool_deferral_ratio", scale: 0.01, help: "Deferred share of the attempts of the whole pool at this ISP, from 0 to 1."},
	{"pmta_verdict", "pool_median_pct"}:   {name: "pmta_verdict_pool_median_deferral_ratio", scale: 0.01, help: "Median deferred share of the pool's IPs with the minimum volume, from 0 to 1."},
	{"pmta_verdict", "score"}:             {name: "pmta_verdict_score", help: "Robust score of an IP's deferral rate against its pool's: 0.6745 × (IP − median) / MAD; from 3.5 an outlier."},
	{"pmta_verdict", "z"}:                 {name: "pmta_verdict_z", help: "One-sided two-proportion z of an IP's deferral rate above the rest of its pool's; from 2.58 more than chance."},
	{"pmta_verdict", "ips"}:               {name: "pmta_verdict_ips", help: "Source IPs of the pool with the minimum volume in the verdict's window."},
	{"pmta_verdict", "ips_above"}:         {name: "pmta_verdict_ips_above", help: "Source IPs of the pool with the minimum volume deferring above the warning threshold."},
	{"pmta_verdict", "window_s"}:          {name: "pmta_verdict_window_seconds", help: "Accounting time the verdict's window covers (less than acct.verdict.window only after a start)."},
}

// pmtaField names a field of a PowerMTA measurement.
type pmtaField struct{ measurement, field string }
