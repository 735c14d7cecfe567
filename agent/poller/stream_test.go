package poller

import (
	"strings"
	"testing"
)

// TestJSONMemberOrder: the envelope and the data object are walked as they
// come, so the order of their members must not matter, and PowerMTA's
// verdict ("status") must win over what data holds, before or after it.
func TestJSONMemberOrder(t *testing.T) {
	const row = `{"name":"gmail.com/v1","rcp":5}`
	lists := []struct {
		name, body string
		rows       int
		err        string
	}{
		{"status after data", `{"data":{"queue":[` + row + `]},"status":"success","message":""}`, 1, ""},
		{"status before data", `{"status":"success","message":"","data":{"queue":[` + row + `]}}`, 1, ""},
		{"listing after other members", `{"data":{"title":"Top","totalRcp":5,"queue":[` + row + `,` + row + `]},"status":"success"}`, 2, ""},
		{"singular after plural", `{"data":{"queues":[` + row + `,` + row + `],"queue":[` + row + `]},"status":"success"}`, 1, ""},
		{"plural after singular", `{"data":{"queue":[` + row + `],"queues":[` + row + `,` + row + `]},"status":"success"}`, 1, ""},
		{"lone entry", `{"status":"success","data":{"queue":` + row + `}}`, 1, ""},
		{"member names in any case", `{"Data":{"queue":[` + row + `]},"STATUS":"success"}`, 1, ""},
		{"a later data wins", `{"data":{"queue":[` + row + `]},"data":{"queue":[]},"status":"success"}`, 0, ""},
		{"error after data", `{"data":{"queue":[` + row + `]},"status":"error","message":"busy"}`, 0, `status "error": busy`},
		{"error before data", `{"status":"error","message":"busy","data":""}`, 0, `status "error": busy`},
		{"error after bad data", `{"data":[1],"status":"error","message":"busy"}`, 0, `status "error": busy`},
		{"status not a string", `{"data":{"queue":[]},"status":1}`, 0, `"status" is not a string`},
		{"not an object", `[{"data":{}}]`, 0, "not an object"},
		{"data after the document", `{"status":"success","data":{}}{}`, 0, "data after the document"},
		{"truncated after data", `{"data":{"queue":[` + row + `]}`, 0, "truncated"},
	}
	for _, tc := range lists {
		t.Run("queues/"+tc.name, func(t *testing.T) {
			l, err := parseQueuesJSON(strings.NewReader(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l.rows) != tc.rows {
				t.Errorf("%d rows, want %d", len(l.rows), tc.rows)
			}
		})
	}

	statuses := []struct {
		name, body string
		rcp        int64
		err        string
	}{
		{"status after data", `{"data":{"status":{"queue":{"smtp":{"rcp":5}}}},"status":"success"}`, 5, ""},
		{"status before data", `{"status":"success","data":{"status":{"queue":{"smtp":{"rcp":5}}}}}`, 5, ""},
		{"data.status wins over data.mta.status", `{"status":"success","data":{"status":{"queue":{"smtp":{"rcp":5}}},"mta":{"status":{"queue":{"smtp":{"rcp":7}}}}}}`, 5, ""},
		{"data.mta.status when data.status is not an object", `{"status":"success","data":{"status":"running","mta":{"product":{"name":"PowerMTA"},"status":{"queue":{"smtp":{"rcp":7}}}}}}`, 7, ""},
		{"error after the status object", `{"data":{"status":{"queue":{"smtp":{"rcp":5}}}},"status":"error","message":"shutting down"}`, 0, "shutting down"},
		{"a value of the wrong type", `{"status":"success","data":{"status":{"queue":{"smtp":{"rcp":5}},"conn":[1]}}}`, 0, "status reply"},
	}
	for _, tc := range statuses {
		t.Run("status/"+tc.name, func(t *testing.T) {
			s, err := parseStatusJSON(strings.NewReader(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Queue.smtp.Rcp.v; got != tc.rcp {
				t.Errorf("queue rcp = %d, want %d", got, tc.rcp)
			}
		})
	}
}
