package sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

func fetchQueues(t *testing.T, s *Sim) map[string]Queue {
	t.Helper()
	out := map[string]Queue{}
	for _, q := range s.Snapshot().Queues {
		out[q.Name] = q
	}
	return out
}

func commandReply(t *testing.T, b []byte) (status, message string, data json.RawMessage) {
	t.Helper()
	var env struct {
		Data    json.RawMessage `json:"data"`
		Status  string          `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return env.Status, env.Message, env.Data
}

func TestPauseResume(t *testing.T) {
	s, c, srv := newTestSim(t, Options{})
	code, b := postCommand(t, srv, "pause queue gmail.com/vmta-gm-011", "json")
	if st, msg, data := commandReply(t, b); code != 200 || st != "success" || msg != "Queue(s) paused." || string(data) != `""` {
		t.Fatalf("pause: %d %s", code, b)
	}
	var qs wQueues
	envelope(t, getOK(t, srv, "/queues?maxitems=0"), &qs)
	found := false
	for _, q := range qs.Queue {
		if q.Name == "gmail.com/vmta-gm-011" {
			found = bool(q.Paused) && q.Conn == 0
		}
	}
	if !found {
		t.Fatal("/queues does not show gmail.com/vmta-gm-011 paused")
	}
	_, rows := readCSV(t, getOK(t, srv, "/queue.csv"))
	for _, r := range rows {
		if r[0] == "gmail.com" && r[1] == "vmta-gm-011" && r[5] != "yes" {
			t.Error("queue.csv does not show the pause")
		}
	}

	// A paused queue delivers nothing and piles up recipients.
	before := fetchQueues(t, s)["gmail.com/vmta-gm-011"]
	c.Add(10 * time.Minute)
	after := fetchQueues(t, s)["gmail.com/vmta-gm-011"]
	if after.Delivered != before.Delivered {
		t.Errorf("paused queue delivered %d", after.Delivered-before.Delivered)
	}
	if after.Rcp <= before.Rcp {
		t.Errorf("paused queue did not grow: %d → %d", before.Rcp, after.Rcp)
	}

	// Bare domain = every vmta of it; wildcards in both halves.
	if _, b := postCommand(t, srv, "pause queue yahoo.com", "json"); !strings.Contains(string(b), "success") {
		t.Fatal(string(b))
	}
	if _, b := postCommand(t, srv, "resume queue */vmta-gm-*", "json"); !strings.Contains(string(b), "Queue(s) resumed.") {
		t.Fatal(string(b))
	}
	qm := fetchQueues(t, s)
	for name, q := range qm {
		switch {
		case strings.HasPrefix(name, "yahoo.com/") && !q.Paused:
			t.Errorf("%s not paused", name)
		case strings.Contains(name, "/vmta-gm-") && q.Paused:
			t.Errorf("%s still paused", name)
		}
	}
	c.Add(10 * time.Minute)
	if q := fetchQueues(t, s)["gmail.com/vmta-gm-011"]; q.Delivered <= after.Delivered {
		t.Error("resumed queue does not deliver")
	}

	if _, b := postCommand(t, srv, "pause queue nosuch.example/*", "json"); !strings.Contains(string(b), `"status":"error"`) {
		t.Errorf("pause of nothing: %s", b)
	}
}

func TestScheduleAndMode(t *testing.T) {
	s, c, srv := newTestSim(t, Options{})
	_, b := postCommand(t, srv, "set queue --mode=backoff gmail.com/*", "json")
	if st, msg, _ := commandReply(t, b); st != "success" || !strings.Contains(msg, "backoff") {
		t.Fatalf("set mode: %s", b)
	}
	for name, q := range fetchQueues(t, s) {
		if strings.HasPrefix(name, "gmail.com/") && (!q.Backoff || q.RetryTime.IsZero() || len(q.Events) == 0) {
			t.Errorf("%s: backoff %v, retry %v, %d events", name, q.Backoff, q.RetryTime, len(q.Events))
		}
	}
	c.Add(time.Minute)
	_, b = postCommand(t, srv, "schedule --retry-recipients gmail.com/*", "json")
	st, msg, _ := commandReply(t, b)
	if st != "success" || msg != "4 of 4 matching queues scheduled." {
		t.Fatalf("schedule: %s", b)
	}
	for name, q := range fetchQueues(t, s) {
		if strings.HasPrefix(name, "gmail.com/") && q.Backoff {
			t.Errorf("%s still in backoff after schedule", name)
		}
	}
	_, b = postCommand(t, srv, "schedule */*", "json-text")
	st, _, data := commandReply(t, b)
	var text string
	json.Unmarshal(data, &text)
	if st != "success" || !strings.HasSuffix(text, "matching queues scheduled.\n") || !strings.Contains(text, " of 183 ") {
		t.Errorf("json-text schedule: %s", b)
	}
	if _, b := postCommand(t, srv, "set queue --mode=sideways gmail.com/*", "json"); !strings.Contains(string(b), `"status":"error"`) {
		t.Errorf("bad mode accepted: %s", b)
	}
}

func TestShowAndReset(t *testing.T) {
	s, c, srv := newTestSim(t, Options{})
	_, b := postCommand(t, srv, "show status", "json")
	var st wStatusData
	envelope(t, b, &st)
	if st.Status.Traffic.Total.Out.Rcp == 0 || st.MTA.Product.Version != "5.0r8" {
		t.Fatalf("show status: %+v", st.Status.Traffic.Total)
	}
	_, b = postCommand(t, srv, "show status", "json-text")
	_, _, data := commandReply(t, b)
	var text string
	json.Unmarshal(data, &text)
	if !strings.Contains(text, "PowerMTA v5.0r8 status on mta01.sim.example") || !strings.Contains(text, "Uptime   3  0:00:00") {
		t.Errorf("json-text status:\n%s", text)
	}
	_, b = postCommand(t, srv, "show queues --maxitems=3", "xml")
	var rsp xnode
	if err := xml.Unmarshal(b, &rsp); err != nil || len(rsp.children("data")) != 1 || len(rsp.children("data")[0].children("queue")) != 3 {
		t.Errorf("xml show queues: %v %.200s", err, b)
	}
	_, b = postCommand(t, srv, "show version", "json")
	if !strings.Contains(string(b), `"version":"5.0r8"`) {
		t.Errorf("show version: %s", b)
	}

	c.Add(time.Minute)
	start := s.Snapshot().Status.StartupTime
	_, b = postCommand(t, srv, "reset counters", "json")
	if _, msg, _ := commandReply(t, b); msg != "Counters reset." {
		t.Fatalf("reset: %s", b)
	}
	snap := s.Snapshot()
	if snap.Status.Traffic.Total.Out.Rcp != 0 || snap.Status.Traffic.TopPerHr.Out.Rcp != 0 || !snap.Status.StartupTime.Equal(start) {
		t.Errorf("after reset: total %d, top %d, startup %v", snap.Status.Traffic.Total.Out.Rcp, snap.Status.Traffic.TopPerHr.Out.Rcp, snap.Status.StartupTime)
	}
	for _, d := range snap.Domains {
		if d.Delivered != 0 || d.Deferred != 0 {
			t.Errorf("%s keeps %d delivered after reset", d.Name, d.Delivered)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	_, _, srv := newTestSim(t, Options{})
	for _, cmd := range []string{"frobnicate", "pause queue", "schedule", "show nothing", "show queues --maxitems=-1"} {
		code, b := postCommand(t, srv, cmd, "json")
		st, msg, data := commandReply(t, b)
		if code != http.StatusOK || st != "error" || msg == "" || string(data) != `""` {
			t.Errorf("%q: %d %s", cmd, code, b)
		}
	}
	code, b := postCommand(t, srv, "frobnicate", "xml")
	if code != http.StatusOK || !bytes.Contains(b, []byte("<err/>")) || bytes.Contains(b, []byte("<succ/>")) {
		t.Errorf("xml error: %s", b)
	}
}

// TestCommandMultipart sends the command the way the user's guide's curl -F
// example does.
func TestCommandMultipart(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("command", "pause queue hotmail.com/*")
	mw.WriteField("format", "json")
	mw.Close()
	resp, err := srv.Client().Post(srv.URL+"/command", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Queue(s) paused.") {
		t.Fatalf("multipart: %s", b)
	}
	if !fetchQueues(t, s)["hotmail.com/vmta-ms-031"].Paused {
		t.Error("hotmail.com/vmta-ms-031 not paused")
	}
}

func TestSeedCommands(t *testing.T) {
	s, _, srv := newTestSim(t, Options{})
	post := func(body string) (int, string) {
		resp, err := srv.Client().Post(srv.URL+"/command", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := post("pause queue outlook.com"); code != 200 || b != "Queue(s) paused.\n" {
		t.Fatalf("seed pause: %d %q", code, b)
	}
	for name, q := range fetchQueues(t, s) {
		if strings.HasPrefix(name, "outlook.com/") && !q.Paused {
			t.Errorf("%s not paused", name)
		}
	}
	if code, b := post("retry queue gmail.com"); code != 200 || !strings.HasSuffix(b, "of 4 matching queues scheduled.\n") {
		t.Errorf("seed retry: %d %q", code, b)
	}
	if code, b := post("resume queue outlook.com"); code != 200 || b != "Queue(s) resumed.\n" {
		t.Errorf("seed resume: %d %q", code, b)
	}
	if code, _ := post("explode queue gmail.com"); code != http.StatusBadRequest {
		t.Errorf("unknown seed command: %d", code)
	}
	if code, _ := post("pause queue nosuch.example"); code != http.StatusBadRequest {
		t.Errorf("seed pause of nothing: %d", code)
	}
}
