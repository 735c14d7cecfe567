package fleettest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pmta-agent/pmta-agent/agent"
)

// key is what the test compares: one server's records of one type to one
// mailbox provider.
type key struct {
	Server, Type, ISP string
}

func (k key) String() string { return k.Server + "/" + k.Type + "/" + k.ISP }

// countAcctFiles counts the records of every accounting file in dir by
// (type, isp), as PowerMTA's readers see them and independently of the
// agent: each file's columns come from its header row; the domain is the
// queue's (before the last "/"), else the recipient's (after the last "@");
// the provider comes from the agent's built-in ISP map.
func countAcctFiles(dir, server string, isps *agent.ISPMap) (map[key]int64, int64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, 0, err
	}
	out := map[key]int64{}
	var total int64
	for _, f := range files {
		n, err := countFile(f, server, isps, out)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", f, err)
		}
		total += n
	}
	return out, total, nil
}

func countFile(path, server string, isps *agent.ISPMap, out map[key]int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var colType, colRcpt, colQueue = -1, -1, -1
	var n int64
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(row) > 0 && row[0] == "type" { // a header row
			colType, colRcpt, colQueue = slices.Index(row, "type"), slices.Index(row, "rcpt"), slices.Index(row, "queue")
			continue
		}
		if colType < 0 {
			return n, errors.New("a record before the header")
		}
		domain := ""
		if q := field(row, colQueue); q != "" {
			if i := strings.LastIndexByte(q, '/'); i >= 0 {
				q = q[:i]
			}
			domain = agent.NormalizeDomain(q)
		} else if rc := strings.TrimSuffix(strings.TrimPrefix(field(row, colRcpt), "<"), ">"); strings.Contains(rc, "@") {
			domain = agent.NormalizeDomain(rc[strings.LastIndexByte(rc, '@')+1:])
		}
		isp := ""
		if domain != "" {
			isp = isps.Lookup(domain)
		}
		out[key{Server: server, Type: field(row, colType), ISP: isp}]++
		n++
	}
}

func field(row []string, i int) string {
	if i < 0 || i >= len(row) {
		return ""
	}
	return strings.TrimSpace(row[i])
}
