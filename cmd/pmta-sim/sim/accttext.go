package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Reply texts of accounting records, per domain class. The shapes follow the
// reference's §5.1 samples; ids, numbers and addresses vary from record to
// record while masking digits and hex ids gives one pattern per text.

var localParts = []string{
	"alice.smith", "bob_jones", "carol", "dave.k", "erin.p", "frank", "gina", "hank", "ivy.l", "jane",
	"kevin.m", "laura", "mike_r", "nina", "oscar.w", "paula", "quinn", "rachel.g", "sam", "tina.b",
}

var campaigns = []string{"spring-sale", "newsletter", "win-back", "product-launch", "weekly-digest"}

func randHex(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func randBase36(r *rand.Rand, n int) string {
	const digits = "0123456789ABCDEFGHJKLMNPQRSTVWXYZabcdefghijkmnpqrstvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(len(digits))]
	}
	return string(b)
}

// rcptFor makes a recipient address at domain.
func rcptFor(r *rand.Rand, domain string) string {
	lp := localParts[r.IntN(len(localParts))]
	switch r.IntN(4) {
	case 0:
		lp += fmt.Sprint(r.IntN(1000))
	case 1:
		lp += fmt.Sprint(1960 + r.IntN(50))
	}
	return lp + "@" + domain
}

// esmtpFor is the EHLO extension list an ISP's MX announces.
func esmtpFor(class int) string {
	switch class {
	case classGmail:
		return "PIPELINING,SIZE,ENHANCEDSTATUSCODES,STARTTLS,8BITMIME,CHUNKING,SMTPUTF8"
	case classYahoo, classAOL:
		return "PIPELINING,SIZE,8BITMIME,STARTTLS"
	case classMicrosoft:
		return "PIPELINING,SIZE,ENHANCEDSTATUSCODES,STARTTLS,8BITMIME,BINARYMIME,CHUNKING,SMTPUTF8"
	}
	return "PIPELINING,SIZE,STARTTLS,8BITMIME"
}

// deliveredDiag is the 250 reply of a delivery.
func deliveredDiag(r *rand.Rand, class int, domain, msgID string, size int, unix int64) string {
	switch class {
	case classGmail:
		return fmt.Sprintf("smtp;250 2.0.0 OK  %d %s - gsmtp", unix, gmailID(r.Uint64()))
	case classYahoo, classAOL:
		return "smtp;250 ok dirdel"
	case classMicrosoft:
		secs := 0.1 + r.Float64()*0.8
		return fmt.Sprintf("smtp;250 2.6.0 %s [InternalId=%d, Hostname=%s.NAMP%03d.PROD.OUTLOOK.COM] %d bytes in %.3f, %.3f KB/sec Queued mail for delivery",
			msgID, 1000000000000+r.Int64N(9000000000000), strings.ToUpper(randBase36(r, 4))+"P220MB"+fmt.Sprintf("%04d", r.IntN(10000)),
			r.IntN(1000), size, secs, float64(size)/1024/secs)
	case classEU:
		if domain == "orange.fr" {
			return fmt.Sprintf("smtp;250 2.0.0 %s mail accepted for delivery", randHex(r, 12))
		}
		return "smtp;250 Requested mail action okay, completed: id=1M" + randBase36(r, 5) + "-1" + randBase36(r, 9) + "-00" + randBase36(r, 5)
	}
	return "smtp;250 2.0.0 Ok: queued as " + randBase36(r, 15)
}

// bounce is one permanent failure: diag, dsnStatus and bounceCat.
type bounce struct {
	diag, status, cat string
	expired           bool // the message expired in the queue
}

// bounceFor picks a bounce of the kind the class produces.
func bounceFor(r *rand.Rand, class int, domain, rcpt, srcIP, mxHost string) bounce {
	if class == classSlow {
		return bounce{unreachable(mxHost, "198.51.100.200"), "4.4.7 (delivery time expired)", "message-expired", true}
	}
	x := r.IntN(100)
	if class == classMailFull && x < 70 {
		x = 80
	}
	switch {
	case x < 70:
		switch class {
		case classGmail:
			return bounce{"smtp;550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser " + gmailID(r.Uint64()) + " - gsmtp",
				"5.1.1 (bad destination mailbox address)", "bad-mailbox", false}
		case classYahoo, classAOL:
			return bounce{"smtp;554 delivery error: dd This user doesn't have a " + domain + " account (" + rcpt + ") [0] - " + mxHost,
				"5.0.0 (undefined status)", "bad-mailbox", false}
		case classMicrosoft:
			return bounce{"smtp;550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [" + msHost(r.Uint64()) + ".eop-nam12.prod.protection.outlook.com]",
				"5.5.0 (other or undefined protocol status)", "bad-mailbox", false}
		}
		return bounce{"smtp;550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown in virtual mailbox table",
			"5.1.1 (bad destination mailbox address)", "bad-mailbox", false}
	case x < 80:
		switch class {
		case classGmail:
			return bounce{"smtp;550-5.7.1 [" + srcIP + "] Gmail has detected that this message is likely suspicious due to the very low reputation of the sending IP address. To best protect our users from spam, the message has been blocked. " + gmailID(r.Uint64()) + " - gsmtp",
				"5.7.1 (delivery not authorized, message refused)", "spam-related", false}
		case classMicrosoft:
			return bounce{"smtp;550 5.7.1 Unfortunately, messages from [" + srcIP + "] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). [" + msHost(r.Uint64()) + ".eop-nam12.prod.protection.outlook.com]",
				"5.7.1 (delivery not authorized, message refused)", "policy-related", false}
		case classYahoo, classAOL:
			return bounce{"smtp;554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
				"5.7.9 (delivery not authorized, message refused)", "policy-related", false}
		case classGeneric:
			// Some servers answer with a multi-line reply; its line break
			// survives into the record and must be quoted.
			return bounce{fmt.Sprintf("smtp;550-5.7.1 Message rejected due to local policy\n550 5.7.1 See https://%s/policy.html?id=%d", mxHost, r.IntN(100000)),
				"5.7.1 (delivery not authorized, message refused)", "policy-related", false}
		}
		return bounce{"smtp;550 5.7.1 Service unavailable; client [" + srcIP + "] blocked using zen.spamhaus.org",
			"5.7.1 (delivery not authorized, message refused)", "spam-related", false}
	case x < 90:
		return bounce{"smtp;552 5.2.2 <" + rcpt + ">: Mailbox full, \"quota\" exceeded", "5.2.2 (mailbox full)", "quota-issues", false}
	}
	reply, _, _ := deferralReply(class, srcIP, r.Uint64())
	return bounce{"smtp;" + reply, "4.4.7 (delivery time expired)", "message-expired", true}
}

// transientFor is a per-recipient 4xx: diag, dsnStatus, bounceCat.
func transientFor(r *rand.Rand, class int, srcIP, mxHost, mxIP string) (string, string, string) {
	switch {
	case class == classSlow:
		return unreachable(mxHost, mxIP), "4.4.1 (no answer from host)", "no-answer-from-host"
	case class == classGmail && r.IntN(3) == 0:
		return "smtp;452-4.2.2 The recipient's inbox is out of storage space. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp " + gmailID(r.Uint64()) + " - gsmtp",
			"4.2.2 (mailbox full)", "quota-issues"
	}
	reply, status, cat := deferralReply(class, srcIP, r.Uint64())
	return "smtp;" + reply, status, cat
}

// fblSource names who sends a provider's complaint reports.
func fblSource(class int, domain string) (userAgent, reporterIP, reportingMta string) {
	switch class {
	case classMicrosoft:
		return "Microsoft JMRP/1.0", "40.92.15.12", "dns; hotmail.com"
	case classYahoo, classAOL:
		return "Yahoo!-Mail-Feedback/2.0", "198.51.100.14", "dns; yahoo.com"
	}
	return "ReturnPathFBL/2.0", "198.51.100.15", "dns; " + domain
}
