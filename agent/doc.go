// Package agent holds pmta-agent's domain — Point, Batch and the Source and
// Sink seams — and the engine that moves points from sources to sinks: the
// configuration, the pipeline that tags and bounds them, and per-sink delivery.
//
// It also holds the small pieces several of those need alike: atomic state
// files (WriteFileAtomic), Retry-After parsing, secret scrubbing (Redactor),
// failure logging that speaks on state changes (FailureLog), TLS settings and
// the line protocol encoder.
//
// The packages that talk to the outside world (the PowerMTA poller, the sinks)
// depend on this package; it depends on none of them.
package agent
