package acct

// state copies the aggregator's open intervals, in a fixed order: the state
// a checkpoint holds, built as structs. The agent writes it with
// appendState; the tests compare the two and use this one to look inside.
func (a *aggregator) state() aggState {
	s := aggState{ClosedUpTo: a.closedUpTo, ClosedSet: a.closedSet, Views: a.viewStates()}
	for _, iv := range a.open {
		is := intervalState{Start: iv.start}
		for _, e := range a.entries(iv) {
			k := &e.key
			is.Acct = append(is.Acct, acctState{
				Type: k.typ.String(), Domain: k.domain, ISP: k.isp, Vmta: k.vmta, Pool: k.pool,
				SourceIP: k.sourceIP, BounceCat: k.bounceCat, DsnClass: dsnClassTag(k.dsnClass),
				Count: e.count, Bytes: e.bytes, QSum: e.qsum, QMax: e.qmax,
			})
		}
		for _, key := range sortedKeys(iv.diag) {
			d := iv.diag[key]
			is.Diag = append(is.Diag, diagState{Type: d.typ.String(), ISP: d.isp, Pattern: d.pattern, Count: d.count})
		}
		s.Intervals = append(s.Intervals, is)
	}
	return s
}
