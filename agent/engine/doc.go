// Package engine moves points from the sources to the sinks: the pipeline
// tags points and bounds their cardinality, one Delivery per sink writes its
// buffer to the sink (retrying, splitting, dead-lettering what the sink
// refuses for good, counting every point once), and the Engine runs them.
//
// The Engine owns everything from New on: the sources and sinks it is
// given, and the buffers (memory or disk queue) and dead-letter files it
// opens for each sink. Its modes are Run (the daemon: sources until the
// context ends, then a bounded drain), Gather (one collection round of the
// sources that can gather, for the once command) and Feed (a producer such
// as a backfill, held back while the sinks are behind, then drained whole).
// Close releases everything in the order that keeps the delivery promise.
package engine
