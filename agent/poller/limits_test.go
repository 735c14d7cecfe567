package poller

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// allocated returns what f allocated on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParseCostBounded: bodies within the byte cap that would make a parser
// allocate many times their size. Each is refused (or cut short) for a
// small, fixed cost.
func TestParseCostBounded(t *testing.T) {
	const n = 4 << 20
	cases := []struct {
		name  string
		parse func(io.Reader) (listing, error)
		body  string
		want  string // in the error
	}{
		// xml.Decoder keeps a stack entry per open element: ~60 bytes each.
		{"xml deep nesting", parseQueuesXML,
			"<rsp><data><queue><name>a/b</name><x>" + strings.Repeat("<a>", n/3), "nested more than 1000 deep"},
		{"xml deep nesting in the envelope", parseQueuesXML,
			"<rsp><err>" + strings.Repeat("<a>", n/3), "nested more than 1000 deep"},
		// csv.Reader keeps an index entry and a string per field.
		{"csv line of commas", parseSeedQueues,
			"domain,vmta,rcpt\n" + strings.Repeat(",", n) + "\n", "a row longer than 16384 bytes"},
		{"csv quoted field left open", parseSeedQueues,
			"domain,vmta,rcpt\na,b,\"" + strings.Repeat("x,", n/2), "a row longer than 16384 bytes"},
		// json.Decoder buffers the value it reads, and again as it grows.
		{"json long string", parseQueuesJSON,
			`{"data":{"title":"` + strings.Repeat("x", n) + `"},"status":"success"}`, "larger than 1048576 bytes"},
		{"json long entry", parseQueuesJSON,
			`{"data":{"queue":[{"name":"a/b","x":"` + strings.Repeat("x", n) + `"}]},"status":"success"}`, "larger than 1048576 bytes"},
		{"json deep nesting in an entry", parseQueuesJSON,
			`{"data":{"queue":[{"name":"a/b","x":` + strings.Repeat("[", n), "exceeded max depth"},
		{"json deep nesting skipped", parseQueuesJSON,
			`{"data":{"other":[` + strings.Repeat("[", n), "exceeded max depth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			cost := allocated(func() { _, err = tc.parse(strings.NewReader(tc.body)) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
			if cost > 8<<20 {
				t.Errorf("parsing %d KiB allocated %d KiB, want < 8 MiB", len(tc.body)>>10, cost>>10)
			}
		})
	}
}

// TestListingKeepsAtMostMaxRows: rows past maxRows are counted as dropped,
// in every format, and the rows kept are the first ones.
func TestListingKeepsAtMostMaxRows(t *testing.T) {
	const extra = 10
	rows := func(format string) string {
		var b strings.Builder
		for i := range maxRows + extra {
			if i > 0 && format == "json" {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, format2[format], i)
		}
		return b.String()
	}
	cases := []struct {
		name  string
		parse func(io.Reader) (listing, error)
		body  string
	}{
		{"json", parseQueuesJSON, `{"data":{"queue":[` + rows("json") + `]},"status":"success"}`},
		{"xml", parseQueuesXML, `<rsp><data>` + rows("xml") + `</data><succ/></rsp>`},
		{"csv", parseSeedQueues, "domain,vmta,rcpt\n" + rows("csv")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.parse(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(l.rows) != maxRows || l.dropped != extra || l.skipped != 0 {
				t.Fatalf("%d rows, %d dropped, %d skipped; want %d, %d, 0", len(l.rows), l.dropped, l.skipped, maxRows, extra)
			}
			if last := l.rows[maxRows-1]; last.Rcp.v != maxRows-1 {
				t.Errorf("last row kept has rcp %d, want %d", last.Rcp.v, maxRows-1)
			}
		})
	}
}

var format2 = map[string]string{
	"json": `{"name":"d.example/v","rcp":%d}`,
	"xml":  `<queue><name>d.example/v</name><rcp>%d</rcp></queue>`,
	"csv":  "d.example,v,%d\n",
}
