package agent

import "context"

// Source produces batches until ctx is cancelled. Run returns nil on a clean
// stop; a non-nil error means the source cannot work at all (bad start-up
// state), never a transient failure — those are counted and retried inside.
type Source interface {
	Name() string
	Run(ctx context.Context, emit func(Batch)) error
}

// Gatherer is an optional ability of a Source: one collection round on demand.
// `pmta-agent once` uses it.
type Gatherer interface {
	Gather(ctx context.Context) (Batch, error)
}

// Sink writes points to one destination. Write either accepts every point or
// returns an error that Classify can read (see SinkError); the delivery loop
// decides from that whether to retry, wait, split or drop.
type Sink interface {
	Name() string
	Write(ctx context.Context, points []Point) error
}

// DefaultBatchSize is how many points one Write hands a sink when its
// configuration does not say.
const DefaultBatchSize = 5000

// Endpointer is an optional ability of a Sink: where it writes, for log
// lines (credentials removed).
type Endpointer interface {
	Endpoint() string
}

// Closer is an optional ability of a Source or Sink that holds resources.
type Closer interface {
	Close() error
}

// StatsReporter is an optional ability of any component: its own health as
// fields, reported by the engine as `pmta_agent` points tagged with
// component=Component().
type StatsReporter interface {
	Component() string
	Stats() []Field
}
