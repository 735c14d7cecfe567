package sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestJSONAndXMLAgree decodes every pmta document in both formats and
// compares them leaf by leaf.
func TestJSONAndXMLAgree(t *testing.T) {
	_, _, srv := newTestSim(t, Options{})
	for _, path := range []string{"/status", "/queues?maxitems=0", "/queues?maxitems=7", "/domains?maxitems=0", "/vmtas?maxitems=0"} {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		jb := getOK(t, srv, path+sep+"format=json")
		xb := getOK(t, srv, path+sep+"format=xml")
		if bytes.Count(jb, []byte("\n")) != 0 || bytes.Count(xb, []byte("\n")) != 0 {
			t.Errorf("%s: documents must be one line", path)
		}
		var env map[string]any
		if err := json.Unmarshal(jb, &env); err != nil {
			t.Fatalf("%s: json: %v", path, err)
		}
		if env["status"] != "success" || env["message"] != "" {
			t.Errorf("%s: envelope %v %v", path, env["status"], env["message"])
		}
		var rsp xnode
		if err := xml.Unmarshal(xb, &rsp); err != nil {
			t.Fatalf("%s: xml: %v", path, err)
		}
		if rsp.XMLName.Local != "rsp" || len(rsp.children("succ")) != 1 || !bytes.Contains(xb, []byte("<succ/>")) {
			t.Errorf("%s: bad XML envelope %.80s", path, xb)
		}
		if err := sameDoc("data", env["data"], rsp.children("data")[0]); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	// Typed JSON, text XML.
	jb := string(getOK(t, srv, "/status"))
	xb := string(getOK(t, srv, "/status?format=xml"))
	for _, want := range []string{`"shuttingDown":false`, `"fullHostName":"mta01.sim.example"`, `"serial":"`} {
		if !strings.Contains(jb, want) {
			t.Errorf("status JSON lacks %s", want)
		}
	}
	for _, want := range []string{"<shuttingDown>0</shuttingDown>", "<pipe><rcp>0</rcp><dom>0</dom><kb>0.0</kb></pipe>"} {
		if !strings.Contains(xb, want) {
			t.Errorf("status XML lacks %s", want)
		}
	}
	qb := string(getOK(t, srv, "/queues?format=xml&maxitems=0"))
	if !strings.Contains(qb, "<paused>yes</paused>") || !strings.Contains(qb, "<mode>backoff</mode>") {
		t.Errorf("queues XML should show a paused and a backoff queue")
	}
}

// TestTotalsAgree checks that every endpoint of both dialects tells the same
// story, and that it is the Snapshot's.
func TestTotalsAgree(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	snap := s.Snapshot()

	var st wStatusData
	envelope(t, getOK(t, srv, "/status"), &st)
	var qs wQueues
	envelope(t, getOK(t, srv, "/queues?maxitems=0"), &qs)
	var ds wDomains
	envelope(t, getOK(t, srv, "/domains?maxitems=0"), &ds)
	var vs wVMTAs
	envelope(t, getOK(t, srv, "/vmtas?maxitems=0"), &vs)

	var qRcp, dRcp, vRcp, qConn, dConn, vConn int64
	var qKB, dKB float64
	for _, q := range qs.Queue {
		qRcp += q.Rcp
		qConn += q.Conn
		qKB += float64(q.KB)
	}
	for _, d := range ds.Domain {
		dRcp += d.Rcp
		dConn += d.Conn
		dKB += float64(d.KB)
	}
	for _, v := range vs.VMTA {
		vRcp += v.Rcp
		vConn += v.Conn
	}
	smtp := st.Status.Queue.SMTP
	if smtp.Rcp != qRcp || qRcp != dRcp || dRcp != vRcp || qs.TotalRcp != qRcp {
		t.Errorf("rcp: status %d, queues %d (totalRcp %d), domains %d, vmtas %d", smtp.Rcp, qRcp, qs.TotalRcp, dRcp, vRcp)
	}
	if out := st.Status.Conn.SMTPOut.Cur; out != qConn || qConn != dConn || dConn != vConn {
		t.Errorf("conn: status %d, queues %d, domains %d, vmtas %d", out, qConn, dConn, vConn)
	}
	if d := float64(smtp.KB) - qKB; d > 0.5 || d < -0.5 {
		t.Errorf("kb: status %v, queues %v", smtp.KB, qKB)
	}
	if len(qs.Queue) != len(snap.Queues) || len(ds.Domain) != 40 || len(vs.VMTA) != 24 {
		t.Errorf("listing sizes: %d queues, %d domains, %d vmtas", len(qs.Queue), len(ds.Domain), len(vs.VMTA))
	}
	if smtp.Rcp != snap.Status.Queue.SMTP.Rcp || st.Status.Traffic.Total.Out.Rcp != snap.Status.Traffic.Total.Out.Rcp {
		t.Errorf("served values differ from Snapshot")
	}
	if st.Status.Spool.TotalRcp != smtp.Rcp+st.Status.Queue.BounceProcessor.Rcp+st.Status.Queue.FeedbackLoopProcessor.Rcp {
		t.Errorf("spool totalRcp %d", st.Status.Spool.TotalRcp)
	}

	// Seed dialect.
	var seed seedStatusJSON
	if err := json.Unmarshal(getOK(t, srv, "/status.json"), &seed); err != nil {
		t.Fatal(err)
	}
	if seed.QueueDepth != smtp.Rcp || seed.ConnectionsOut != st.Status.Conn.SMTPOut.Cur ||
		seed.ConnectionsIn != st.Status.Conn.SMTPIn.Cur || seed.ActiveConnections != seed.ConnectionsIn+seed.ConnectionsOut {
		t.Errorf("seed status %+v disagrees with /status", seed)
	}
	if want := float64(st.Status.Traffic.LastMin.Out.Rcp) / 60; seed.MsgsPerSec < want-0.001 || seed.MsgsPerSec > want+0.001 {
		t.Errorf("msgs_per_sec %v, lastMin.out.rcp/60 = %v", seed.MsgsPerSec, want)
	}

	h, rows := readCSV(t, getOK(t, srv, "/queue.csv"))
	if strings.Join(h, ",") != "domain,vmta,rcpt,kbytes,conn,paused,mode" {
		t.Errorf("queue.csv header %v", h)
	}
	var sum int64
	paused, backoff := 0, 0
	for _, r := range rows {
		sum += atoi(t, r[2])
		if r[5] == "yes" {
			paused++
		}
		if r[6] == "backoff" {
			backoff++
		}
	}
	if sum != smtp.Rcp || len(rows) != len(snap.Queues) || paused == 0 || backoff == 0 {
		t.Errorf("queue.csv: rcpt %d of %d, %d rows, %d paused, %d backoff", sum, smtp.Rcp, len(rows), paused, backoff)
	}

	h, rows = readCSV(t, getOK(t, srv, "/domain.csv"))
	if strings.Join(h, ",") != "domain,rcpt,kbytes,delivered,deferred,conn" {
		t.Errorf("domain.csv header %v", h)
	}
	var rcpt, delivered, deferred int64
	for _, r := range rows {
		rcpt += atoi(t, r[1])
		delivered += atoi(t, r[3])
		deferred += atoi(t, r[4])
	}
	if rcpt != smtp.Rcp || delivered != st.Status.Traffic.Total.Out.Rcp {
		t.Errorf("domain.csv: rcpt %d (want %d), delivered %d (want total out %d)", rcpt, smtp.Rcp, delivered, st.Status.Traffic.Total.Out.Rcp)
	}
	if f := float64(deferred) / float64(delivered+deferred); f < 0.015 || f > 0.05 {
		t.Errorf("deferred share of attempts %.3f, want about 3 %% (a healthy sender)", f)
	}

	h, rows = readCSV(t, getOK(t, srv, "/vmta.csv"))
	if strings.Join(h, ",") != "vmta,rcpt,msgs_per_sec,kbytes,conn,domains" {
		t.Errorf("vmta.csv header %v", h)
	}
	rcpt = 0
	var mps float64
	for _, r := range rows {
		rcpt += atoi(t, r[1])
		mps += atof(t, r[2])
	}
	if rcpt != smtp.Rcp || mps < seed.MsgsPerSec*0.98 || mps > seed.MsgsPerSec*1.02 {
		t.Errorf("vmta.csv: rcpt %d (want %d), msgs/s %v (want about %v)", rcpt, smtp.Rcp, mps, seed.MsgsPerSec)
	}
}

func TestListingsSortedAndLimited(t *testing.T) {
	_, _, srv := newTestSim(t, Options{})
	var qs wQueues
	envelope(t, getOK(t, srv, "/queues"), &qs)
	if len(qs.Queue) != 100 || qs.Title != "Top 100 queues by number of recipients" {
		t.Errorf("default listing: %d queues, title %q", len(qs.Queue), qs.Title)
	}
	for i := 1; i < len(qs.Queue); i++ {
		if qs.Queue[i].Rcp > qs.Queue[i-1].Rcp {
			t.Fatalf("queues not sorted by rcp at %d", i)
		}
	}
	var all wQueues
	envelope(t, getOK(t, srv, "/queues?maxitems=0"), &all)
	if all.TotalRcp != qs.TotalRcp || all.TotalQueuesWithRcp != qs.TotalQueuesWithRcp {
		t.Errorf("totals must cover every queue whatever maxitems is")
	}
	var ds wDomains
	envelope(t, getOK(t, srv, "/domains?maxitems=3"), &ds)
	if len(ds.Domain) != 3 || ds.Domain[0].Rcp < ds.Domain[1].Rcp {
		t.Errorf("domains maxitems=3: %+v", ds.Domain)
	}
	var yahoo wQueues
	envelope(t, getOK(t, srv, "/queues?maxitems=0&queue=yahoo.com/*"), &yahoo)
	if len(yahoo.Queue) != 4 {
		t.Errorf("queue=yahoo.com/* gave %d queues, want 4", len(yahoo.Queue))
	}
	for _, q := range yahoo.Queue {
		if !strings.HasPrefix(q.Name, "yahoo.com/vmta-yh-") {
			t.Errorf("filtered listing has %s", q.Name)
		}
	}
	if code, _ := get(t, srv, "/queues?maxitems=x"); code != http.StatusBadRequest {
		t.Errorf("bad maxitems: %d", code)
	}
	if code, _ := get(t, srv, "/status?format=yaml"); code != http.StatusBadRequest {
		t.Errorf("bad format: %d", code)
	}
}

func TestRoutes(t *testing.T) {
	_, _, srv := newTestSim(t, Options{})
	client := *srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui" {
		t.Errorf("/ → %d %q, want a redirect to /ui", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]int{"/ui": 200, "/nope": 404, "/status/x": 404, "/queueDetail": 404, "/status.json": 200} {
		if code, _ := get(t, srv, path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	resp, err = srv.Client().Get(srv.URL + "/command")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /command: %d", resp.StatusCode)
	}
}

func TestAPIKey(t *testing.T) {
	const key = "k3y_0123456789abcdef0123456789abcdef"
	_, _, srv := newTestSim(t, Options{APIKey: key})
	for _, path := range []string{"/status", "/queues?format=xml", "/status.json", "/queue.csv", "/"} {
		code, body := get(t, srv, path)
		if code != http.StatusForbidden || !strings.Contains(string(body), "access forbidden") {
			t.Errorf("%s without key: %d %q", path, code, body)
		}
		if code, _ := get(t, srv, path, "X-API-Key", key+"x"); code != http.StatusForbidden {
			t.Errorf("%s with a wrong key: %d", path, code)
		}
	}
	if code, _ := get(t, srv, "/status", "X-API-Key", key); code != http.StatusOK {
		t.Errorf("with the key: %d", code)
	}
	if code, _ := postCommand(t, srv, "pause queue gmail.com", "json"); code != http.StatusForbidden {
		t.Errorf("command without key: %d", code)
	}
}

// TestGolden pins the documents of one seed at one instant, so that an
// unintended change of shape or value shows up in review.
func TestGolden(t *testing.T) {
	_, _, srv := newTestSim(t, Options{Seed: 42})
	for name, path := range map[string]string{
		"status.json":      "/status?format=json",
		"status.xml":       "/status?format=xml",
		"queues.json":      "/queues?format=json&maxitems=5",
		"queues.xml":       "/queues?format=xml&maxitems=5",
		"domains.xml":      "/domains?format=xml&maxitems=5",
		"vmtas.json":       "/vmtas?format=json&maxitems=5",
		"seed-status.json": "/status.json",
		"domain.csv":       "/domain.csv",
		"vmta.csv":         "/vmta.csv",
	} {
		got := getOK(t, srv, path)
		file := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(file, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (run go test -update if intended)\n got: %.300s\nwant: %.300s", path, file, got, want)
		}
	}
}
