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
// The model is deterministic: it is a function of Options.Seed, of the times
// Options.Clock returns, and of the calls made on it. Time advances lazily, one
// whole second at a time, whenever the model is read, so with a frozen or
// stepped clock every value is stable and reproducible.
package sim
