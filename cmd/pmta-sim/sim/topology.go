package sim

import (
	"fmt"
	"math"
	"strings"
)

// Pools, in the order vmtas are handed out. Domains whose pool has no vmta
// (only possible with very few vmtas) are routed through pool-general.
const (
	poolGmail = iota
	poolYahoo
	poolMicrosoft
	poolGeneral
	poolEU
	poolTransactional
	numPools
)

type poolDef struct {
	name   string
	prefix string // vmta-<prefix>-NNN
	base   int    // first vmta number, also the last octet of its IP
	limit  int    // numbers from here on belong to the next pool
	share  int    // vmtas per 24
	conn   int64  // max outbound connections per queue
}

var poolDefs = [numPools]poolDef{
	poolGmail:         {"pool-gmail", "gm", 11, 21, 4, 20},
	poolYahoo:         {"pool-yahoo", "yh", 21, 31, 4, 10},
	poolMicrosoft:     {"pool-microsoft", "ms", 31, 41, 4, 15},
	poolGeneral:       {"pool-general", "gen", 41, 51, 6, 5},
	poolEU:            {"pool-eu", "eu", 51, 61, 3, 8},
	poolTransactional: {"pool-transactional", "tx", 5, 11, 3, 4},
}

// Domain classes choose error texts, MX hosts and how often queues back off.
const (
	classGmail = iota
	classYahoo
	classAOL
	classMicrosoft
	classApple
	classEU
	classGeneric
	classSlow     // never answers: always in backoff with ETIMEDOUT
	classMailFull // mailboxes over quota
)

type domainDef struct {
	name  string
	isp   string // as the agent's built-in ISP map names it
	pool  int
	class int
	df    float64 // share of delivery attempts deferred
	bf    float64 // share of delivery attempts bounced
}

// domainDefs is ordered by volume: weights follow a Zipf law over this rank.
// The named mailbox providers defer 1–4 % of attempts, a healthy sender's
// normal state (below the 5 % warning of the shipped alert rules); the
// long tail holds the chronically bad domains.
var domainDefs = []domainDef{
	{"gmail.com", "google", poolGmail, classGmail, 0.014, 0.025},
	{"yahoo.com", "yahoo", poolYahoo, classYahoo, 0.032, 0.035},
	{"outlook.com", "microsoft", poolMicrosoft, classMicrosoft, 0.028, 0.03},
	{"hotmail.com", "microsoft", poolMicrosoft, classMicrosoft, 0.028, 0.035},
	{"aol.com", "yahoo", poolYahoo, classAOL, 0.042, 0.04},
	{"icloud.com", "apple", poolGeneral, classApple, 0.017, 0.02},
	{"comcast.net", "comcast", poolGeneral, classGeneric, 0.021, 0.03},
	{"live.com", "microsoft", poolMicrosoft, classMicrosoft, 0.028, 0.03},
	{"ymail.com", "yahoo", poolYahoo, classYahoo, 0.032, 0.04},
	{"googlemail.com", "google", poolGmail, classGmail, 0.014, 0.03},
	{"gmx.de", "gmx", poolEU, classEU, 0.017, 0.02},
	{"web.de", "webde", poolEU, classEU, 0.017, 0.02},
	{"orange.fr", "orange", poolEU, classEU, 0.025, 0.03},
	{"msn.com", "microsoft", poolMicrosoft, classMicrosoft, 0.028, 0.04},
	{"att.net", "att", poolGeneral, classGeneric, 0.021, 0.03},
	{"sbcglobal.net", "att", poolGeneral, classGeneric, 0.021, 0.04},
	{"verizon.net", "yahoo", poolYahoo, classAOL, 0.035, 0.05},
	{"me.com", "apple", poolGeneral, classApple, 0.017, 0.02},
	{"t-online.de", "t-online", poolEU, classEU, 0.021, 0.02},
	{"free.fr", "free", poolEU, classEU, 0.021, 0.03},
	{"hotmail.co.uk", "microsoft", poolMicrosoft, classMicrosoft, 0.028, 0.03},
	{"yahoo.co.uk", "yahoo", poolYahoo, classYahoo, 0.032, 0.04},
	{"cox.net", "cox", poolGeneral, classGeneric, 0.017, 0.03},
	{"charter.net", "charter", poolGeneral, classGeneric, 0.017, 0.03},
	{"btinternet.com", "bt", poolGeneral, classGeneric, 0.017, 0.03},
	{"laposte.net", "laposte", poolEU, classEU, 0.021, 0.03},
	{"libero.it", "libero", poolEU, classEU, 0.025, 0.03},
	{"mac.com", "apple", poolGeneral, classApple, 0.017, 0.03},
	{"gmx.net", "gmx", poolEU, classEU, 0.017, 0.02},
	{"protonmail.com", "proton", poolGeneral, classGeneric, 0.01, 0.02},
	{"mail.ru", "mailru", poolGeneral, classGeneric, 0.025, 0.04},
	{"yandex.ru", "yandex", poolGeneral, classGeneric, 0.021, 0.04},
	{"example-corp.de", "other", poolTransactional, classGeneric, 0.03, 0.01},
	{"qq.com", "tencent", poolGeneral, classGeneric, 0.028, 0.05},
	{"shop-partner.example", "other", poolTransactional, classGeneric, 0.03, 0.01},
	{"example-isp.net", "other", poolGeneral, classGeneric, 0.05, 0.06},
	{"mail-full.example.net", "other", poolGeneral, classMailFull, 0.25, 0.10},
	{"slowdomain.example", "other", poolGeneral, classSlow, 0.6, 0.05},
	{"university.example.edu", "other", poolGeneral, classGeneric, 0.04, 0.04},
	{"bigcorp.example.com", "other", poolTransactional, classGeneric, 0.03, 0.01},
}

// domain is a recipient domain of the model.
type domain struct {
	domainDef
	weight float64 // share of delivery attempts, sums to 1 over domains
	mxHost string
	mxIP   string
	queues []int
}

// vmta is a VirtualMTA with one source IP.
type vmta struct {
	name   string
	pool   int
	ip     string
	helo   string
	queues []int
}

// buildTopology lays out nd domains, nv vmtas and their queues.
func buildTopology(seed uint64, nd, nv int) ([]domain, []vmta, []queue) {
	doms := make([]domain, nd)
	var wsum float64
	for i := range doms {
		var def domainDef
		if i < len(domainDefs) {
			def = domainDefs[i]
		} else {
			def = domainDef{fmt.Sprintf("longtail-%03d.example", i+1), "other", poolGeneral, classGeneric, 0.05, 0.03}
		}
		w := 1 / math.Pow(float64(i+1), 1.1)
		doms[i] = domain{domainDef: def, weight: w}
		doms[i].mxHost, doms[i].mxIP = mxFor(def, i)
		wsum += w
	}
	for i := range doms {
		doms[i].weight /= wsum
	}

	vms := buildVMTAs(nv)
	byPool := make([][]int, numPools)
	for i, v := range vms {
		byPool[v.pool] = append(byPool[v.pool], i)
	}
	var qs []queue
	for di := range doms {
		p := doms[di].pool
		if len(byPool[p]) == 0 {
			p = poolGeneral
		}
		members := byPool[p]
		// An uneven split inside a pool, as real IP warm-up and reputation cause.
		split := make([]float64, len(members))
		var ssum float64
		for k := range split {
			split[k] = 0.7 + 0.6*unit(hash3(seed, uint64(di)+1000, uint64(k)))
			ssum += split[k]
		}
		for k, vi := range members {
			qi := len(qs)
			q := newQueue(seed, qi, &doms[di], di, &vms[vi], vi, doms[di].weight*split[k]/ssum)
			qs = append(qs, q)
			doms[di].queues = append(doms[di].queues, qi)
			vms[vi].queues = append(vms[vi].queues, qi)
		}
	}
	return doms, vms, qs
}

// buildVMTAs hands out n vmtas over the pools in the proportions of the stock
// 24-vmta layout, numbered like vmta-gm-011 with source IP 203.0.113.11.
func buildVMTAs(n int) []vmta {
	sizes := make([]int, numPools)
	if n < numPools {
		order := []int{poolGeneral, poolGmail, poolYahoo, poolMicrosoft, poolEU, poolTransactional}
		for i := 0; i < n; i++ {
			sizes[order[i]] = 1
		}
	} else {
		w := make([]float64, numPools)
		for p := range poolDefs {
			w[p] = float64(poolDefs[p].share)
		}
		extra := make([]int64, numPools)
		alloc(int64(n-numPools), w, extra)
		for p := range sizes {
			sizes[p] = 1 + int(extra[p])
		}
	}
	var out []vmta
	overflow := 100
	for p, def := range poolDefs {
		for k := 0; k < sizes[p]; k++ {
			num := def.base + k
			if num >= def.limit {
				num = overflow
				overflow++
			}
			out = append(out, vmta{
				name: fmt.Sprintf("vmta-%s-%03d", def.prefix, num),
				pool: p,
				ip:   sourceIP(num),
				helo: fmt.Sprintf("mta%03d.shop.example", num),
			})
		}
	}
	return out
}

// sourceIP maps a vmta number to a documentation address (RFC 5737), and
// past those to the benchmarking range 198.18.0.0/15 (RFC 2544).
func sourceIP(num int) string {
	switch {
	case num <= 254:
		return fmt.Sprintf("203.0.113.%d", num)
	case num <= 508:
		return fmt.Sprintf("192.0.2.%d", num-254)
	}
	n := num - 509
	return fmt.Sprintf("198.%d.%d.%d", 18+n/(256*254), n/254%256, n%254+1)
}

// mxFor returns the MX host and address the model delivers a domain to. The
// big providers get their real host names; everything else lives in
// 198.51.100.0/24.
func mxFor(d domainDef, rank int) (string, string) {
	switch d.class {
	case classGmail:
		return "gmail-smtp-in.l.google.com", "142.250.102.27"
	case classYahoo:
		return "mta7.am0.yahoodns.net", "67.195.204.79"
	case classAOL:
		return "mx-aol.mail.gm0.yahoodns.net", "67.195.204.79"
	case classMicrosoft:
		return strings.ReplaceAll(d.name, ".", "-") + ".olc.protection.outlook.com", "52.101.68.10"
	case classApple:
		return "mx01.mail.icloud.com", "17.57.154.33"
	case classSlow:
		return "mx1." + d.name, "198.51.100.200"
	}
	return "mx01." + d.name, fmt.Sprintf("198.51.100.%d", 20+rank%180)
}
