package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The seed dialect: an in-house proxy some shops run in front of PowerMTA,
// serving a JSON summary, CSV listings with a header row, and a plain-text
// command endpoint.

type seedStatusJSON struct {
	QueueDepth        int64   `json:"queue_depth"`
	MsgsPerSec        float64 `json:"msgs_per_sec"`
	ActiveConnections int64   `json:"active_connections"`
	ConnectionsIn     int64   `json:"connections_in"`
	ConnectionsOut    int64   `json:"connections_out"`
}

func (s *Sim) serveSeedStatus(w http.ResponseWriter, _ *http.Request) {
	st := s.Snapshot().Seed
	body, err := json.Marshal(seedStatusJSON(st))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

type seedList int

const (
	seedQueues seedList = iota
	seedDomains
	seedVMTAs
)

func kbText(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func itoa(v int64) string     { return strconv.FormatInt(v, 10) }

// seedCSV renders one listing of snap.
func seedCSV(snap Snapshot, kind seedList) ([]byte, error) {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	var rows [][]string
	switch kind {
	case seedQueues:
		rows = append(rows, []string{"domain", "vmta", "rcpt", "kbytes", "conn", "paused", "mode"})
		for _, q := range snap.Queues {
			paused := "no"
			if q.Paused {
				paused = "yes"
			}
			rows = append(rows, []string{q.Domain, q.VMTA, itoa(q.Rcp), kbText(q.KB), itoa(q.Conn), paused, q.Mode()})
		}
	case seedDomains:
		rows = append(rows, []string{"domain", "rcpt", "kbytes", "delivered", "deferred", "conn"})
		for _, d := range snap.Domains {
			rows = append(rows, []string{d.Name, itoa(d.Rcp), kbText(d.KB), itoa(d.Delivered), itoa(d.Deferred), itoa(d.Conn)})
		}
	case seedVMTAs:
		rows = append(rows, []string{"vmta", "rcpt", "msgs_per_sec", "kbytes", "conn", "domains"})
		for _, v := range snap.VMTAs {
			rows = append(rows, []string{v.Name, itoa(v.Rcp), strconv.FormatFloat(v.MsgsPerSec, 'f', -1, 64), kbText(v.KB), itoa(v.Conn), itoa(v.Domains)})
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("write csv: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Sim) serveSeedCSV(kind seedList) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		body, err := seedCSV(s.Snapshot(), kind)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Write(body)
	}
}

// serveSeedCommand runs "pause queue d", "resume queue d" and "retry queue d"
// (the proxy's word for schedule) and answers in plain text.
func (s *Sim) serveSeedCommand(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "error: read body: %v\n", err)
		return
	}
	words := strings.Fields(string(body))
	if len(words) != 3 || !strings.EqualFold(words[1], "queue") {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "error: expected \"pause|resume|retry queue <domain>[/<vmta>]\"\n")
		return
	}
	var line string
	switch strings.ToLower(words[0]) {
	case "pause", "resume":
		line = strings.ToLower(words[0]) + " queue " + words[2]
	case "retry":
		line = "schedule " + words[2]
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "error: unknown command %q\n", words[0])
		return
	}
	res := s.runCommand(line)
	if res.err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "error: %v\n", res.err)
		return
	}
	io.WriteString(w, res.msg+"\n")
}
