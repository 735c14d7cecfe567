package poller

import "io"

// valueLimit lets a streaming parser read no more than max bytes past the
// start of the value it is parsing: json.Decoder and csv.Reader buffer the
// whole of the value they read, so one huge value in a hostile body would
// grow their buffer without bound. start reports where the value begins,
// in bytes read (the parser's InputOffset); past the limit, Read returns
// err.
type valueLimit struct {
	r     io.Reader
	max   int64
	start func() int64
	err   error
	read  int64
}

func (l *valueLimit) Read(p []byte) (int, error) {
	room := l.start() + l.max - l.read
	if room <= 0 {
		return 0, l.err
	}
	// Read no more than the limit allows, or the parser's buffer grows
	// (doubling) well past it before the next check.
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}
