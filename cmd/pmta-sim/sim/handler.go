package sim

import (
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Handler serves both dialects; their paths do not overlap:
//
//	pmta: GET /status /queues /domains /vmtas (?format=json|xml), POST /command (form)
//	seed: GET /status.json /queue.csv /domain.csv /vmta.csv, POST /command (text/plain)
//
// GET / redirects to /ui as PowerMTA 5.0 does; other paths are 404.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui", http.StatusFound)
	})
	mux.HandleFunc("GET /ui", s.serveUI)
	mux.HandleFunc("GET /status", s.servePMTA(docStatus))
	mux.HandleFunc("GET /queues", s.servePMTA(docQueues))
	mux.HandleFunc("GET /domains", s.servePMTA(docDomains))
	mux.HandleFunc("GET /vmtas", s.servePMTA(docVMTAs))
	mux.HandleFunc("POST /command", s.serveCommand)
	mux.HandleFunc("GET /status.json", s.serveSeedStatus)
	mux.HandleFunc("GET /queue.csv", s.serveSeedCSV(seedQueues))
	mux.HandleFunc("GET /domain.csv", s.serveSeedCSV(seedDomains))
	mux.HandleFunc("GET /vmta.csv", s.serveSeedCSV(seedVMTAs))
	return s.withFaults(s.withAuth(mux))
}

// forbidden is what PowerMTA answers a host not allowed by http-access.
const forbidden = "<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>access forbidden</p></body></html>\n"

func (s *Sim) withAuth(next http.Handler) http.Handler {
	if s.apiKey == "" {
		return next
	}
	key := []byte(s.apiKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-Key")), key) != 1 {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, forbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Sim) serveUI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>PowerMTA %s</title></head><body><div id=\"app\">PowerMTA web monitor (simulated)</div></body></html>\n", s.hostname)
}

type docKind int

const (
	docStatus docKind = iota
	docQueues
	docDomains
	docVMTAs
)

// listParams reads maxitems (default 100, 0 = all).
func listParams(q url.Values) (int, error) {
	v := q.Get("maxitems")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad maxitems %q", v)
	}
	return n, nil
}

func (s *Sim) servePMTA(kind docKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		format := strings.ToLower(q.Get("format"))
		if format == "" {
			format = "json"
		}
		if format != "json" && format != "xml" {
			writeEnvelope(w, http.StatusBadRequest, "json", "", false, fmt.Sprintf("unsupported format %q", format))
			return
		}
		limit, err := listParams(q)
		if err != nil {
			writeEnvelope(w, http.StatusBadRequest, format, "", false, err.Error())
			return
		}
		var filter *queueMatcher
		if f := q.Get("queue"); kind == docQueues && f != "" {
			m, err := parseQueuePattern(f)
			if err != nil {
				writeEnvelope(w, http.StatusBadRequest, format, "", false, err.Error())
				return
			}
			filter = &m
		}
		snap := s.Snapshot()
		var data any
		switch kind {
		case docStatus:
			data = wireStatus(snap.Status)
		case docQueues:
			all := snap.Queues
			if filter != nil {
				all = nil
				for _, qu := range snap.Queues {
					if filter.match(qu.Domain, qu.VMTA) {
						all = append(all, qu)
					}
				}
			}
			data = wireQueues(top(all, limit), all)
		case docDomains:
			data = wireDomains(top(snap.Domains, limit))
		case docVMTAs:
			data = wireVMTAs(top(snap.VMTAs, limit))
		}
		writeEnvelope(w, http.StatusOK, format, data, true, "")
	}
}

// writeEnvelope encodes data in the PowerMTA envelope of format.
func writeEnvelope(w http.ResponseWriter, code int, format string, data any, ok bool, msg string) {
	var (
		body []byte
		err  error
		ct   string
	)
	if format == "xml" {
		body, err = encodeXML(data, ok, msg)
		ct = "text/xml; charset=utf-8"
	} else {
		body, err = encodeJSON(data, ok, msg)
		ct = "application/json"
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	w.Write(body)
}

// serveCommand tells the dialects apart by the body: a form (urlencoded or
// multipart) is PowerMTA's Command API, anything else is the seed proxy's
// plain-text command.
func (s *Sim) serveCommand(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data" {
		s.servePMTACommand(w, r)
		return
	}
	s.serveSeedCommand(w, r)
}

// servePMTACommand answers with HTTP 200 and the envelope whatever the
// outcome. PowerMTA's error envelope is not documented publicly; the
// simulator answers {"data":"","status":"error","message":"…"}.
func (s *Sim) servePMTACommand(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
		writeEnvelope(w, http.StatusBadRequest, "json", "", false, "bad form: "+err.Error())
		return
	}
	format := strings.ToLower(r.FormValue("format"))
	if format == "" {
		format = "json"
	}
	var base string
	switch format {
	case "json", "json-text":
		base = "json"
	case "xml", "xml-text":
		base = "xml"
	default:
		writeEnvelope(w, http.StatusOK, "json", "", false, fmt.Sprintf("unsupported format %q", format))
		return
	}
	line := r.FormValue("command")
	if strings.TrimSpace(line) == "" {
		writeEnvelope(w, http.StatusOK, base, "", false, "missing command")
		return
	}
	res := s.runCommand(line)
	switch {
	case res.err != nil:
		writeEnvelope(w, http.StatusOK, base, "", false, res.err.Error())
	case strings.HasSuffix(format, "-text"):
		writeEnvelope(w, http.StatusOK, base, res.text, true, "")
	case res.data != nil:
		writeEnvelope(w, http.StatusOK, base, res.data, true, "")
	default:
		writeEnvelope(w, http.StatusOK, base, "", true, res.msg)
	}
}
