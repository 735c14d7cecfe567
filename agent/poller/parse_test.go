package poller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParserErrors feeds each parser bodies that are not what it asks for.
// Every one must fail with a message that names the problem.
func TestParserErrors(t *testing.T) {
	statusJSON := func(body string) error { _, err := parseStatusJSON(strings.NewReader(body)); return err }
	statusXML := func(body string) error { _, err := parseStatusXML(strings.NewReader(body)); return err }
	queuesJSON := func(body string) error { _, err := parseQueuesJSON(strings.NewReader(body)); return err }
	queuesXML := func(body string) error { _, err := parseQueuesXML(strings.NewReader(body)); return err }
	seedStatus := func(body string) error { _, err := parseSeedStatus(strings.NewReader(body)); return err }
	seedQueues := func(body string) error { _, err := parseSeedQueues(strings.NewReader(body)); return err }

	full, err := os.ReadFile(filepath.Join("testdata", "pmta-json", "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	fullXML, err := os.ReadFile(filepath.Join("testdata", "pmta-xml", "status.xml"))
	if err != nil {
		t.Fatal(err)
	}
	login := "<!DOCTYPE html>\n<html><head><title>PowerMTA login</title></head><body><form>…</form></body></html>"
	forbidden := "<html><body><h1>Access forbidden</h1></body></html>"

	cases := []struct {
		name  string
		parse func(string) error
		body  string
		want  string
	}{
		{"json empty", statusJSON, "", "empty response body"},
		{"json blank", statusJSON, " \r\n\t", "empty response body"},
		{"json login page", statusJSON, login, "HTML page"},
		{"json forbidden page", statusJSON, forbidden, "HTML page"},
		{"json bare markup", statusJSON, "<h1>Forbidden</h1>", "instead of JSON"},
		{"json invalid", statusJSON, `{"data": {`, "truncated"},
		{"json truncated sample", statusJSON, string(full[:len(full)/2]), "truncated"},
		{"json garbage", statusJSON, `not json at all`, "invalid JSON"},
		{"json two documents", statusJSON, `{"data":{},"status":"success"} {}`, "data after the document"},
		{"json error envelope", statusJSON, `{"data":"","status":"error","message":"access denied"}`, `status "error": access denied`},
		{"json no status member", statusJSON, `{"data":{"status":{}}}`, `no "status" member`},
		{"json no data", statusJSON, `{"status":"success","message":""}`, `no "data"`},
		{"json data not object", statusJSON, `{"data":[1,2],"status":"success"}`, "data is not an object"},
		{"json no status object", statusJSON, `{"data":{"mta":{}},"status":"success"}`, "no status object"},
		{"json traffic wrong type", statusJSON, `{"data":{"status":{"traffic":5}},"status":"success"}`, "status reply"},
		{"xml empty", statusXML, "", "empty response body"},
		{"xml login page", statusXML, login, "HTML page"},
		{"xml forbidden fragment", statusXML, "<h1>Access forbidden</h1>", "HTML page"},
		{"xml json body", statusXML, `{"data":{}}`, "JSON instead of XML"},
		{"xml wrong root", statusXML, "<reply><data/></reply>", "want <rsp>"},
		{"xml no succ", statusXML, "<rsp><data><status/></data></rsp>", "no <succ/>"},
		{"xml error element", statusXML, "<rsp><err>permission denied</err></rsp>", "permission denied"},
		{"xml no data", statusXML, "<rsp><succ/></rsp>", "no <data>"},
		{"xml truncated", statusXML, string(fullXML[:len(fullXML)/2]), "truncated"},
		{"xml broken", statusXML, "<rsp><data></rsp>", "invalid XML"},
		{"xml no status", statusXML, "<rsp><data><mta/></data><succ/></rsp>", "no <status>"},
		{"queues json error envelope", queuesJSON, `{"status":"error","message":"unknown queue"}`, "unknown queue"},
		{"queues json scalar list", queuesJSON, `{"data":{"queue":42},"status":"success"}`, "neither a list nor an object"},
		{"queues json html", queuesJSON, forbidden, "HTML page"},
		{"queues xml no succ", queuesXML, "<rsp><data><queue><name>a/b</name></queue></data></rsp>", "no <succ/>"},
		{"seed status html", seedStatus, login, "HTML page"},
		{"seed status array", seedStatus, `[1,2]`, "not a JSON object"},
		{"seed status pmta envelope", seedStatus, string(full), "queue_depth is missing"},
		{"seed status bad number", seedStatus, `{"queue_depth":"deep","msgs_per_sec":"fast","active_connections":[]}`, "queue_depth is not a number"},
		{"seed status truncated", seedStatus, `{"queue_depth":1,"msgs_per`, "truncated"},
		{"seed csv html", seedQueues, forbidden, "HTML page"},
		{"seed csv plain text", seedQueues, "Forbidden\n", "not the seed CSV"},
		{"seed csv empty", seedQueues, "", "empty response body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(tc.body)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParseStatusShapes(t *testing.T) {
	// One builder for a status with a given shuttingDown/paused encoding
	// and nesting; all must read the same.
	cases := []struct {
		name, body string
		wantShut   int64
	}{
		{"bool", `{"data":{"status":{"shuttingDown":true,"queue":{"smtp":{"rcp":5}}}},"status":"success"}`, 1},
		{"number", `{"data":{"status":{"shuttingDown":0,"queue":{"smtp":{"rcp":5}}}},"status":"success"}`, 0},
		{"yes", `{"data":{"status":{"shuttingDown":"yes","queue":{"smtp":{"rcp":"5"}}}},"status":"success"}`, 1},
		{"mta nesting", `{"data":{"mta":{"status":{"shuttingDown":"no","queue":{"smtp":{"rcp":5.0}}}}},"status":"success"}`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseStatusJSON(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			fields, bad := s.fields()
			if len(bad) != 0 {
				t.Errorf("bad fields %v", bad)
			}
			got := map[string]any{}
			for _, f := range fields {
				got[f.Key] = f.Value
			}
			if got["shutting_down"] != tc.wantShut {
				t.Errorf("shutting_down = %v, want %d", got["shutting_down"], tc.wantShut)
			}
			if got["queue_rcp"] != int64(5) {
				t.Errorf("queue_rcp = %#v, want int64 5", got["queue_rcp"])
			}
			if _, ok := got["out_rcp_total"]; ok {
				t.Error("out_rcp_total present although the document has no traffic")
			}
		})
	}
}

func TestParseStatusBadValueLeftOut(t *testing.T) {
	body := `{"data":{"status":{"spool":{"initPct":"complete","totalRcp":7},"queue":{"smtp":{"rcp":5}}}},"status":"success"}`
	s, err := parseStatusJSON(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	fields, bad := s.fields()
	if len(bad) != 1 || bad[0] != "spool_init_pct" {
		t.Errorf("bad = %v, want [spool_init_pct]", bad)
	}
	for _, f := range fields {
		if f.Key == "spool_init_pct" {
			t.Error("unreadable spool_init_pct was emitted")
		}
	}
	if len(fields) != 2 {
		t.Errorf("fields = %v, want queue_rcp and spool_rcp", fields)
	}
}

func TestParseXMLLatin1(t *testing.T) {
	body := "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rsp><data><domain><name>caf\xe9.example</name><rcp>3</rcp></domain></data><succ/></rsp>"
	l, err := parseDomainsXML(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.rows) != 1 || l.rows[0].Name.v != "café.example" {
		t.Errorf("rows = %+v", l.rows)
	}
}

func TestParseListEmpty(t *testing.T) {
	for name, body := range map[string]string{
		"json no key":  `{"data":{"title":"Top 10 queues","totalRcp":0},"status":"success","message":""}`,
		"json null":    `{"data":{"queue":null},"status":"success"}`,
		"json empty":   `{"data":{"queue":[]},"status":"success"}`,
		"json plural":  `{"data":{"queues":[]},"status":"success"}`,
		"xml no queue": `<rsp><data><title>Top 10 queues</title><totalRcp>0</totalRcp></data><succ/></rsp>`,
	} {
		t.Run(name, func(t *testing.T) {
			parse := parseQueuesJSON
			if strings.HasPrefix(body, "<") {
				parse = parseQueuesXML
			}
			l, err := parse(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(l.rows) != 0 || l.skipped != 0 {
				t.Errorf("listing = %+v, want empty", l)
			}
		})
	}
}

func TestParseSeedCSVColumns(t *testing.T) {
	// Positional columns win over header names; optional ones are found
	// by name wherever they are, and may be missing.
	body := "Domain,RCP,KB,ok,later\r\nGmail.com,5,,100,7\r\n\"quoted, name\",1,2,3,4\r\nx.example,1,2,3\r\n"
	l, err := parseSeedDomains(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if l.skipped != 1 {
		t.Errorf("skipped = %d, want 1 (the short row)", l.skipped)
	}
	if len(l.rows) != 2 {
		t.Fatalf("rows = %+v", l.rows)
	}
	r := l.rows[0]
	if r.Name.v != "Gmail.com" || r.Rcp.v != 5 || r.KB.ok || r.Delivered.v != 100 || r.Deferred.v != 7 {
		t.Errorf("row 0 = %+v", r)
	}
	if l.rows[1].Name.v != "quoted, name" {
		t.Errorf("row 1 name = %q", l.rows[1].Name.v)
	}
}

func TestFlexValues(t *testing.T) {
	ints := map[string]struct {
		v       int64
		ok, bad bool
	}{
		"12": {12, true, false}, " 7 ": {7, true, false}, "84312.0": {84312, true, false}, "1e3": {1000, true, false},
		"": {0, false, false}, "1.5": {0, false, true}, "abc": {0, false, true}, "1e300": {0, false, true},
	}
	for in, want := range ints {
		var f flexInt
		f.set(in)
		if f.v != want.v || f.ok != want.ok || f.bad != want.bad {
			t.Errorf("flexInt(%q) = %+v, want %+v", in, f, want)
		}
	}
	for in, want := range map[string]bool{"yes": true, "NO": false, "1": true, "0": false, "true": true, "False": false} {
		var f flexBool
		f.set(in)
		if !f.ok || f.v != want {
			t.Errorf("flexBool(%q) = %+v, want %v", in, f, want)
		}
	}
	var b flexBool
	b.set("maybe")
	if !b.bad {
		t.Error(`flexBool("maybe") not bad`)
	}
	var fl flexFloat
	fl.set("NaN")
	if !fl.bad {
		t.Error(`flexFloat("NaN") not bad`)
	}
	var j flexInt
	if err := j.UnmarshalJSON([]byte(`{"a":1}`)); err != nil || !j.bad {
		t.Errorf("flexInt from an object = %+v, %v; want bad and no error", j, err)
	}
}
