// Package engine moves points from the sources to the sinks: the pipeline
// tags points and bounds their cardinality, one Delivery per sink writes its
// buffer to the sink (retrying, splitting, dead-lettering what the sink
// refuses for good, counting every point once), and the Engine runs the
// sources, the pipeline and the deliveries and stops them in order.
package engine
