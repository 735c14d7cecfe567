// Package agent holds pmta-agent's domain — Point, Batch and the Source and
// Sink seams — and the engine that moves points from sources to sinks: the
// configuration, the pipeline that tags and bounds them, and per-sink delivery.
//
// The packages that talk to the outside world (the PowerMTA poller, the sinks)
// depend on this package; it depends on none of them.
package agent
