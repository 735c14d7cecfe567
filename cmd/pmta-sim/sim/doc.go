// Package sim is an in-memory PowerMTA: one consistent model of a busy mail
// server — recipient domains, VirtualMTAs grouped in pools, domain/vmta queues,
// traffic counters — that is served over HTTP in two dialects and written to
// disk as accounting CSV files.
//
// The pmta dialect imitates the PowerMTA 5.0 web monitor (/status, /queues,
// /domains, /vmtas with format=json or xml, POST /command). The seed dialect
// imitates an in-house proxy some shops run in front of PowerMTA
// (/status.json and CSV listings). Both are rendered from the same Snapshot,
// so a test can compare what a client stored with what was served.
//
// Situations can be driven on demand: deferral rates per ISP or domain
// (SetDeferralRate), per source IP (SetIPDeferralRate) and per pool
// (SetPoolDeferralRate) — the IP's rate beats the pool's, which beats the
// ISP's — show in the API's counters and backoff and in the accounting
// records written from then on. WriteConfig writes a PowerMTA configuration
// file describing the model (management port, accounting files, vmtas and
// their source IPs, pools, domain macros, <domain> blocks), which the agent
// can read as /etc/pmta/config. ApplyScenario puts the model in a named
// situation: "ip-reputation" (one yahoo IP defers, its pool-mates do not),
// "pool-throttle" (every IP of pool-microsoft defers), "config-fix" (a
// directive of the config file changed and google's deferrals halved),
// "config-noop" (a directive changed, no rate), and "clear".
//
// The model is deterministic: it is a function of Options.Seed, of the times
// Options.Clock returns, and of the calls made on it. Time advances lazily, one
// whole second at a time, whenever the model is read, so with a frozen or
// stepped clock every value is stable and reproducible.
package sim
