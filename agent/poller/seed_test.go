package poller

import (
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/logtest"

	"github.com/pmta-agent/pmta-agent/agent"
)

// TestSeedStatusTakesWhatIsThere: a status.json without one (or two) of the
// documented keys, or with one that is not a number, still gives the
// others; only a document with none of them readable is refused.
func TestSeedStatusTakesWhatIsThere(t *testing.T) {
	cases := []struct {
		name, body        string
		want              map[string]any
		missing, unusable []string
		err               string
	}{
		{name: "all there", body: `{"queue_depth":5,"msgs_per_sec":1.5,"active_connections":2}`,
			want: map[string]any{"queue_rcp": int64(5), "out_rcp_per_sec": 1.5, "conn_active": int64(2)}},
		{name: "no queue_depth", body: `{"msgs_per_sec":1.5,"active_connections":2}`,
			want: map[string]any{"out_rcp_per_sec": 1.5, "conn_active": int64(2)}, missing: []string{"queue_depth"}},
		{name: "no msgs_per_sec", body: `{"queue_depth":5,"active_connections":2,"connections_in":1}`,
			want: map[string]any{"queue_rcp": int64(5), "conn_active": int64(2), "conn_in": int64(1)}, missing: []string{"msgs_per_sec"}},
		{name: "no active_connections", body: `{"queue_depth":5,"msgs_per_sec":1.5}`,
			want: map[string]any{"queue_rcp": int64(5), "out_rcp_per_sec": 1.5}, missing: []string{"active_connections"}},
		{name: "only one", body: `{"active_connections":2}`,
			want: map[string]any{"conn_active": int64(2)}, missing: []string{"queue_depth", "msgs_per_sec"}},
		{name: "null is absent", body: `{"queue_depth":null,"msgs_per_sec":1.5,"active_connections":2}`,
			want: map[string]any{"out_rcp_per_sec": 1.5, "conn_active": int64(2)}, missing: []string{"queue_depth"}},
		{name: "not a number", body: `{"queue_depth":"deep","msgs_per_sec":1.5,"active_connections":2,"connections_out":[]}`,
			want: map[string]any{"out_rcp_per_sec": 1.5, "conn_active": int64(2)}, unusable: []string{"queue_depth", "connections_out"}},
		{name: "none of them", body: `{"queue":5,"connections_in":3}`, err: "queue_depth is missing, as are msgs_per_sec and active_connections (not the seed status document?)"},
		{name: "none readable", body: `{"queue_depth":"deep","msgs_per_sec":"fast"}`,
			err: "none of queue_depth, msgs_per_sec, active_connections can be read: queue_depth is not a number, msgs_per_sec is not a number, active_connections is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSeedStatus(strings.NewReader(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for _, f := range s.fields() {
				got[f.Key] = f.Value
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(s.missing, tc.missing) || !reflect.DeepEqual(s.unreadable, tc.unusable) {
				t.Errorf("missing %v, unreadable %v; want %v, %v", s.missing, s.unreadable, tc.missing, tc.unusable)
			}
		})
	}
}

// TestSeedFieldsMissingCountedAndLogged: a round with a partial status.json
// is up, counts the missing keys in fields_missing, and says so in the log
// when it starts and then at most every ten minutes.
func TestSeedFieldsMissingCountedAndLogged(t *testing.T) {
	docs := docHandler(t, filepath.Join("testdata", "seed"), nil)
	srv := failingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status.json" {
			_, _ = w.Write([]byte(`{"queue_depth": 84312, "msgs_per_sec": 116.85}`))
			return
		}
		docs.ServeHTTP(w, r)
	})
	logs := logtest.New()
	p, clock := newTestPoller(t, allEndpoints(Config{URL: srv.URL, Dialect: DialectSeed}), logs.Logger())
	count := func() int { return strings.Count(logs.String(), "seed status.json lacks documented fields") }
	for i := range 11 { // minutes 0 to 10
		b, err := p.Gather(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want := agent.Point{Measurement: "pmta_status", Time: t0, Fields: []agent.Field{
				{Key: "up", Value: int64(1)}, {Key: "queue_rcp", Value: int64(84312)}, {Key: "out_rcp_per_sec", Value: 116.85}}}
			if !reflect.DeepEqual(b.Points[0], want) {
				t.Errorf("status point = %+v, want %+v", b.Points[0], want)
			}
		}
		clock.advance(time.Minute)
	}
	if got := statValue(t, p, "fields_missing"); got != 11 {
		t.Errorf("fields_missing = %d, want 11 (one key, 11 rounds)", got)
	}
	if got := statValue(t, p, "up"); got != 1 {
		t.Errorf("up = %d, want 1", got)
	}
	if n := count(); n != 2 {
		t.Errorf("%d log lines over 11 minutes, want 2 (the first round, then 10 minutes later)\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "missing=[active_connections]") {
		t.Errorf("the log does not name the missing key:\n%s", logs)
	}
}

// TestSeedCSVWithoutHeader: a first row whose positional numbers are
// numbers is data, not a header; the optional columns are then absent.
func TestSeedCSVWithoutHeader(t *testing.T) {
	type row struct {
		name       string
		rcp        int64
		kbOK       bool
		delivered  int64
		msgsPerSec float64
	}
	cases := []struct {
		name  string
		parse func(string) (listing, error)
		body  string
		want  []row
	}{
		{"queue.csv", func(b string) (listing, error) { return parseSeedQueues(strings.NewReader(b)) },
			"yahoo.com,vmta-yh-021,18342,912455.3,0,no,backoff\ngmail.com,vmta-gm-011,9120\n",
			[]row{{name: "yahoo.com", rcp: 18342}, {name: "gmail.com", rcp: 9120}}},
		{"queue.csv with header", func(b string) (listing, error) { return parseSeedQueues(strings.NewReader(b)) },
			"domain,vmta,rcpt,kbytes\nyahoo.com,vmta-yh-021,18342,912455.3\n",
			[]row{{name: "yahoo.com", rcp: 18342, kbOK: true}}},
		{"domain.csv", func(b string) (listing, error) { return parseSeedDomains(strings.NewReader(b)) },
			"yahoo.com,24410,1203398.0,150230,9120,2\ngmail.com,17233,834412.6,402113,811,40\n",
			[]row{{name: "yahoo.com", delivered: 150230}, {name: "gmail.com", delivered: 402113}}},
		{"domain.csv with header", func(b string) (listing, error) { return parseSeedDomains(strings.NewReader(b)) },
			"domain,rcpt,kbytes,delivered,deferred\nyahoo.com,24410,1203398.0,150230,9120\n",
			[]row{{name: "yahoo.com", rcp: 24410, kbOK: true, delivered: 150230}}},
		{"vmta.csv", func(b string) (listing, error) { return parseSeedVMTAs(strings.NewReader(b)) },
			"vmta-yh-021,18342,0,912455.3,0,212\nvmta-gm-011,9120,61.5\n",
			[]row{{name: "vmta-yh-021"}, {name: "vmta-gm-011", msgsPerSec: 61.5}}},
		{"vmta.csv with header", func(b string) (listing, error) { return parseSeedVMTAs(strings.NewReader(b)) },
			"vmta,rcpt,msgs_per_sec,kbytes\nvmta-gm-011,9120,61.5,441870.2\n",
			[]row{{name: "vmta-gm-011", rcp: 9120, kbOK: true, msgsPerSec: 61.5}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.parse(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			for _, r := range l.rows {
				got = append(got, row{r.Name.v, r.Rcp.v, r.KB.ok, r.Delivered.v, r.MsgsPerSec.v})
			}
			if !reflect.DeepEqual(got, tc.want) || l.skipped != 0 {
				t.Errorf("rows = %+v (%d skipped), want %+v", got, l.skipped, tc.want)
			}
		})
	}
}
