// Package agent is pmta-agent's domain: what a point is (Point, Tag, Field,
// Batch), the seams between the parts (Source, Gatherer, Sink, Store,
// DeadLetters, StatsReporter, Closer), how a sink says what went wrong
// (SinkError, its kinds, PartialWriteError), and the rules every point obeys:
// tag values made safe (SafeTag), InfluxDB line protocol (AppendLineProtocol),
// the mailbox provider of a domain (ISPMap).
//
// It depends on nothing of the agent's own; everything else depends on it.
// The parts live in packages named after what they do: engine (pipeline,
// per-sink delivery, the run), acct and poller (the two sources), queue
// (the buffers), config, selfmon, deadletter; and the plumbing they share:
// statefile (atomic writes, directory locks), transport (TLS, the HTTP
// transport, Retry-After), redact (secrets out of errors), ratelog
// (rate-limited logs), bytesize, zerofill (the defaults of a Config built
// in code), logtest (a log recorder for tests).
package agent
