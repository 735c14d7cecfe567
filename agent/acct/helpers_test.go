package acct

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// sumCount adds up the count field of the pmta_acct points.
// sumCount returns the sum of count over the pmta_acct points, and fails
// the test if another view's sum differs: every view sums every record.
func sumCount(t testing.TB, pts []agent.Point) int64 {
	t.Helper()
	sums := map[string]int64{}
	for i := range pts {
		m := pts[i].Measurement
		if m == measDiag || !strings.HasPrefix(m, measAcct) {
			continue
		}
		v, ok := pts[i].FieldValue("count")
		c, isInt := v.(int64)
		if !ok || !isInt {
			t.Fatalf("point %d has no int64 count: %#v", i, pts[i])
		}
		sums[m] += c
	}
	for m, n := range sums {
		if n != sums[measAcct] {
			t.Fatalf("the %s view sums to %d, pmta_acct to %d", m, n, sums[measAcct])
		}
	}
	return sums[measAcct]
}

// sortedLP renders points as line protocol, one line each, sorted.
func sortedLP(pts []agent.Point) string {
	lines := strings.Split(strings.TrimRight(string(agent.LineProtocol(pts)), "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// csvField encodes one field the way PowerMTA does: quoted only when it
// holds a comma, a quote, CR or LF, with quotes doubled.
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func csvLine(fields []string, crlf bool) string {
	enc := make([]string, len(fields))
	for i, f := range fields {
		enc[i] = csvField(f)
	}
	if crlf {
		return strings.Join(enc, ",") + "\r\n"
	}
	return strings.Join(enc, ",") + "\n"
}

// header23 is PowerMTA 4.5/5.0's default d/b header.
const header23 = "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool"

// genRecord is a generated 23-column record and the key it must count under.
type genRecord struct {
	typ, domain, vmta string
	line              string
}

var genDomains = []string{"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "aol.com", "example-corp.de", "mail-full.example.net", "comcast.net"}

// genLine makes the i-th record of a d/b/t mix logged at ts.
func genLine(r *rand.Rand, i int, ts time.Time, crlf bool) genRecord {
	dom := genDomains[r.IntN(len(genDomains))]
	n := r.IntN(8) + 1
	vmta := fmt.Sprintf("vmta-%02d", n)
	ip := fmt.Sprintf("203.0.113.%d", n)
	typ, status, diag, cat := "d", "2.0.0 (success)", "smtp;250 2.0.0 OK  1705332225 d75a77b69052e-42a1bc3f1c2si11223344qtx.512 - gsmtp", "success"
	switch k := r.IntN(10); {
	case k == 0:
		typ, status, cat = "b", "5.7.1 (delivery not authorized, message refused)", "policy-related"
		diag = fmt.Sprintf("smtp;550 5.7.1 Unfortunately, messages from [%s] weren't sent. (S3150). [BN8NAM12FT%03d.eop-nam12.prod.protection.outlook.com]", ip, i%1000)
	case k < 3:
		typ, status, cat = "t", "4.7.0 (delivery not authorized, message refused)", "policy-related"
		diag = fmt.Sprintf("smtp;421 4.7.0 [TSS04] Messages from %s temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", ip)
	}
	queued := ts.Add(-time.Duration(r.IntN(300)) * time.Second)
	f := []string{typ, ts.Format("2006-01-02 15:04:05-0700"), queued.Format("2006-01-02 15:04:05-0700"),
		fmt.Sprintf("bounce-%x@em.shop.example", i), fmt.Sprintf("user%d@%s", i, dom), "", "relayed", status, diag,
		"mx.example (198.51.100.7)", cat, "smtp", "inject01.shop.example (10.20.0.11)", "smtp", ip, "198.51.100.7",
		"PIPELINING,SIZE,ENHANCEDSTATUSCODES,STARTTLS,8BITMIME", fmt.Sprint(40000 + r.IntN(20000)), vmta,
		"spring-sale-0115", "", dom + "/" + vmta, "pool-" + strings.SplitN(dom, ".", 2)[0]}
	return genRecord{typ: typ, domain: dom, vmta: vmta, line: csvLine(f, crlf)}
}

// genFile returns a header and n records starting at start, one every step.
func genFile(seed uint64, n int, start time.Time, step time.Duration, crlf bool) ([]byte, []genRecord) {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	if crlf {
		b.WriteString(header23 + "\r\n")
	} else {
		b.WriteString(header23 + "\n")
	}
	recs := make([]genRecord, n)
	for i := range n {
		recs[i] = genLine(r, i, start.Add(time.Duration(i)*step), crlf)
		b.WriteString(recs[i].line)
	}
	return b.Bytes(), recs
}

// tally counts points by (type, vmta) from the pmta_acct view and by
// (type, domain) from the pmta_acct_domain view, as the exactness tests
// need: each default view must sum exactly.
type tallyKey struct{ typ, domain, vmta string }

func tallyPoints(t testing.TB, pts []agent.Point) map[tallyKey]int64 {
	t.Helper()
	m := map[tallyKey]int64{}
	for i := range pts {
		p := &pts[i]
		if p.Measurement != measAcct && p.Measurement != measAcct+"_domain" {
			continue
		}
		typ, _ := p.TagValue("type")
		dom, _ := p.TagValue("domain")
		vm, _ := p.TagValue("vmta")
		c, _ := p.FieldValue("count")
		m[tallyKey{typ, dom, vm}] += c.(int64)
	}
	return m
}

func tallyRecords(recs []genRecord) map[tallyKey]int64 {
	m := map[tallyKey]int64{}
	for _, r := range recs {
		m[tallyKey{r.typ, "", r.vmta}]++
		m[tallyKey{r.typ, r.domain, ""}]++
	}
	return m
}

// pointKey is what InfluxDB identifies a point by: measurement, tag set, time.
func pointKey(p *agent.Point) string {
	var b strings.Builder
	b.WriteString(p.Measurement)
	for _, t := range p.Tags {
		if t.Value != "" {
			b.WriteString("|" + t.Key + "=" + t.Value)
		}
	}
	fmt.Fprintf(&b, "@%d", p.Time.UnixNano())
	return b.String()
}
