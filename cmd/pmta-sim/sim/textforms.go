package sim

import (
	"fmt"
	"strings"
	"time"
)

// The CLI's plain-text forms, served for format=json-text / xml-text. Their
// layout follows the samples in the PowerMTA user's guide.

func textStatus(st Status) string {
	var b strings.Builder
	p := st.MTA.Product
	fmt.Fprintf(&b, "            %s v%s status on %s on %s\n\n", p.Name, p.Version, st.MTA.FullHostName, stamp(st.TimeNow))
	b.WriteString("  Traffic    ------------inbound------------  ------------outbound-----------\n")
	b.WriteString("                 rcpts      msgs      kbytes      rcpts      msgs      kbytes\n")
	row := func(name string, c TrafficCounters) {
		fmt.Fprintf(&b, "%11s %10d %9d %11.1f %10d %9d %11.1f\n", name, c.In.Rcp, c.In.Msg, c.In.KB, c.Out.Rcp, c.Out.Msg, c.Out.KB)
	}
	tr := st.Traffic
	row("Total", tr.Total)
	row("Last Hour", tr.LastHr)
	row("Top/Hour", tr.TopPerHr)
	row("Last Min.", tr.LastMin)
	row("Top/Min.", tr.TopPerMin)
	c := st.Conn
	b.WriteString("\n Connections    active       top     maximum  Domain       cached     pending\n")
	fmt.Fprintf(&b, "    Inbound %10d %9d %11d    Names %12d %11d\n", c.SMTPIn.Cur, c.SMTPIn.Top, c.SMTPIn.Max, st.Resolver.NamesCached, st.Resolver.QueriesPending)
	fmt.Fprintf(&b, "   Outbound %10d %9d %11d\n", c.SMTPOut.Cur, c.SMTPOut.Top, c.SMTPOut.Max)
	q := st.Queue
	other := QueueTotal{
		Rcp: q.Pipe.Rcp + q.Discard.Rcp + q.File.Rcp + q.Alias.Rcp + q.BounceProcessor.Rcp + q.FeedbackLoopProcessor.Rcp,
		Dom: q.Pipe.Dom + q.Discard.Dom + q.File.Dom + q.Alias.Dom + q.BounceProcessor.Dom + q.FeedbackLoopProcessor.Dom,
		KB:  q.Pipe.KB + q.Discard.KB + q.File.KB + q.Alias.KB + q.BounceProcessor.KB + q.FeedbackLoopProcessor.KB,
	}
	b.WriteString("\n     Queues      rcpts   domains      kbytes  Spool        in use    recycled\n")
	fmt.Fprintf(&b, "       SMTP %10d %9d %11.1f    Files %12d %11d\n", q.SMTP.Rcp, q.SMTP.Dom, q.SMTP.KB, st.Spool.FilesInUse, st.Spool.FilesRecycled)
	fmt.Fprintf(&b, "      other %10d %9d %11.1f    Init.                complete\n", other.Rcp, other.Dom, other.KB)
	up := st.TimeNow.Sub(st.StartupTime)
	days := int64(up / (24 * time.Hour))
	rest := up % (24 * time.Hour)
	fmt.Fprintf(&b, "\n     Status %10s    Started  %s    Uptime %3d %2d:%02d:%02d\n", st.State, stamp(st.StartupTime),
		days, int64(rest/time.Hour), int64(rest%time.Hour/time.Minute), int64(rest%time.Minute/time.Second))
	return b.String()
}

func textQueues(qs []Queue) string {
	var b strings.Builder
	b.WriteString("queue                                    #rcpt     kbytes conn st    retry last error\n")
	b.WriteString("---------------------------------------- ----- ---------- ---- -- -------- ----------\n")
	for _, q := range qs {
		st := ""
		if q.Paused {
			st += "P"
		}
		if q.Backoff {
			st += "B"
		}
		retry := ""
		if !q.RetryTime.IsZero() {
			retry = q.RetryTime.Format("15:04:05")
		}
		fmt.Fprintf(&b, "%-40s %5d %10.1f %4d %-2s %8s %s\n", q.Name, q.Rcp, q.KB, q.Conn, st, retry, truncate(lastError(q), 60))
	}
	fmt.Fprintf(&b, "\n%d queues shown.\n", len(qs))
	return b.String()
}

func textDomains(ds []Domain, all int, lastErr map[string]string) string {
	var b strings.Builder
	b.WriteString("-----------------------------domain --#rcpt ---kbytes conn last error----------\n")
	for _, d := range ds {
		fmt.Fprintf(&b, "%35s %7d %10.1f %4d %s\n", d.Name, d.Rcp, d.KB, d.Conn, truncate(lastErr[d.Name], 60))
	}
	fmt.Fprintf(&b, "\n%d of %d domains shown.\n", len(ds), all)
	return b.String()
}

func textVMTAs(vs []VMTA, total int64, all int) string {
	var b strings.Builder
	b.WriteString("name                 domains   #rcpt % total      kbytes conn\n")
	b.WriteString("-------------------- ------- ------- ------- ----------- ----\n")
	for _, v := range vs {
		pct := int64(0)
		if total > 0 {
			pct = v.Rcp * 100 / total
		}
		fmt.Fprintf(&b, "%-20s %7d %7d %7d %11.1f %4d\n", v.Name, v.Domains, v.Rcp, pct, v.KB, v.Conn)
	}
	fmt.Fprintf(&b, "\n%d of %d virtual MTAs.\n", len(vs), all)
	return b.String()
}

func textVersion(st Status) string {
	p := st.MTA.Product
	return fmt.Sprintf("%s version v%s, %d-bit, built %s (%s)\n", p.Name, p.Version, p.Bits, p.BuildDate, p.Revision)
}
