package sim

import (
	"fmt"
	"strings"
)

// Texts below follow replies captured from real servers (see the reference's
// §1.1 and §5.1). Numbers and ids vary per call so that a client masking digits
// and hex ids maps every variant of one reply to one pattern.

// gmailID is a Gmail queue id such as d75a77b69052e-42a1bc3f1c2si11223344qtx.512.
func gmailID(h uint64) string {
	h2 := mix(h)
	return fmt.Sprintf("%013x-%012xsi%08dqtx.%d", h>>12&0xfffffffffffff, h2&0xffffffffffff, h2>>20%100000000, 100+h%900)
}

// msHost is an Exchange Online front-end name such as BN8NAM12FT048.
func msHost(h uint64) string {
	regions := []string{"BN8NAM12", "DM6NAM12", "CO1NAM11", "SN1NAM02"}
	return fmt.Sprintf("%sFT%03d", regions[h%4], h>>8%100)
}

// deferralReply is the 4xx an ISP answers a throttled sender with.
func deferralReply(class int, srcIP string, h uint64) (reply, status, cat string) {
	switch class {
	case classYahoo, classAOL:
		return "421 4.7.0 [TSS04] Messages from " + srcIP + " temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
			"4.7.0 (delivery not authorized, message refused)", "policy-related"
	case classGmail:
		return "421-4.7.28 [" + srcIP + "] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. " + gmailID(h) + " - gsmtp",
			"4.7.28 (delivery not authorized, message refused)", "spam-related"
	case classMicrosoft:
		return "451 4.7.650 The mail server [" + srcIP + "] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [" + msHost(h) + ".eop-nam12.prod.protection.outlook.com]",
			"4.7.650 (delivery not authorized, message refused)", "policy-related"
	case classMailFull:
		return "452 4.2.2 Mailbox full", "4.2.2 (mailbox full)", "quota-issues"
	}
	if h%2 == 0 {
		return "421 4.7.0 Too many concurrent SMTP connections from " + srcIP + "; please try again later", "4.7.0 (other or undefined security status)", "policy-related"
	}
	return "451 4.7.1 Greylisting in action, please come back later", "4.7.1 (delivery not authorized, message refused)", "policy-related"
}

// unreachable is the connection failure of a host that never answers.
func unreachable(mxHost, mxIP string) string {
	return "ETIMEDOUT connecting to " + mxHost + " (" + mxIP + ")"
}

// eventText renders a queue event the way the monitor's last-error list does.
func (s *Sim) eventText(qi int, e eventAt) string {
	q := &s.queues[qi]
	d, v := &s.domains[q.di], &s.vmtas[q.vi]
	switch e.kind {
	case evConnLimit:
		return "connect rate limit reached"
	case evMsgLimit:
		return "message rate limit reached (based on queue's max-msg-rate in configuration)"
	case evUnreachable:
		return unreachable(d.mxHost, d.mxIP) + " from " + v.helo + " (" + v.ip + ")"
	}
	reply, _, _ := deferralReply(d.class, v.ip, hash3(s.seed, uint64(qi), uint64(e.t)))
	return `Error: "` + reply + `" while connected from ` + v.helo + " (" + v.ip + ") to " + d.mxHost + " (" + d.mxIP + ")"
}

// lastError is the newest event text of a queue, or "".
func lastError(q Queue) string {
	if len(q.Events) == 0 {
		return ""
	}
	return q.Events[0].Text
}

// truncate shortens s to n runes with an ellipsis, as the CLI tables do.
func truncate(s string, n int) string {
	r := []rune(strings.ReplaceAll(s, "\n", " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-3]) + "..."
}
