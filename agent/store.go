package agent

// Entry is one unit of a sink's buffer: the points of one Append, in order,
// under a sequence number that grows by one per Append and is never reused
// within a store's life (also across restarts for a durable store).
type Entry struct {
	Seq    uint64
	Points []Point
}

// Store holds a sink's pending points until the sink acknowledged them. The
// delivery loop reads it; the pipeline appends to it. Implementations:
// MemoryStore (lost on exit, for stdout and tests) and the durable on-disk
// queue in agent/queue. Every method is safe for concurrent use.
type Store interface {
	// Append adds points as one entry. durable is called exactly once, when
	// the entry would survive a crash of the process (and, by the store's
	// sync policy, of the machine) — at once for a store that cannot do
	// better — or, if the store's bound drops the entry before that, as it
	// is dropped: the store counts the loss, and a caller that confirms in
	// order must not wait forever for an entry that is gone.
	// An error means the points were not taken (and durable is not called).
	Append(points []Point, durable func()) error
	// Oldest returns the oldest entry not yet acknowledged.
	Oldest() (Entry, bool)
	// Newest returns the newest entry not yet acknowledged.
	Newest() (Entry, bool)
	// After returns the oldest unacknowledged entry with a sequence number
	// above seq.
	After(seq uint64) (Entry, bool)
	// Holds reports whether the entry seq is still waiting: appended, not
	// acknowledged and not dropped by the bound. The delivery loop asks so
	// that points it delivered from an entry the bound dropped meanwhile
	// are not counted twice (written and dropped).
	Holds(seq uint64) bool
	// Ack removes the entry seq for good. Entries may be acknowledged out
	// of order; acknowledging an entry that is gone (dropped by the bound
	// while it was being written) is not an error.
	Ack(seq uint64) error
	// Notify is signalled (without blocking) after every Append.
	Notify() <-chan struct{}
	// Pending returns the entries and points waiting, and their size in
	// bytes where the store knows it.
	Pending() (entries, points int, bytes int64)
}

// DeadLetters keeps the points a sink refused for good, with the reason, so
// that an operator can see them (agent/deadletter writes them to a file).
// An error means they were not kept; the caller counts them as refused.
type DeadLetters interface {
	Keep(points []Point, reason string) error
}
