package sim

import (
	"bytes"
	"net/http"
	"time"
)

// Faults make the simulated API misbehave, for tests of a broken PowerMTA.
// Which request fails is drawn from the seed and the request's sequence
// number, so a run is reproducible.
type Faults struct {
	Delay       time.Duration // waited before every response
	ErrorRate   float64       // fraction of requests answered 500
	GarbageRate float64       // fraction of bodies replaced by garbage
	Down        bool          // every request answered 503
}

// SetFaults replaces the fault settings.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.log.Info("faults set", "delay", f.Delay, "errorRate", f.ErrorRate, "garbageRate", f.GarbageRate, "down", f.Down)
}

// faultDraw is what one request got.
type faultDraw struct {
	f         Faults
	fail      bool
	garble    bool
	kind      uint64
	noiseSeed uint64
}

func (s *Sim) drawFault() faultDraw {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fseq++
	h := hash3(s.seed, 0xfa17, s.fseq)
	h2 := mix(h)
	return faultDraw{
		f:         s.faults,
		fail:      unit(h) < s.faults.ErrorRate,
		garble:    unit(h2) < s.faults.GarbageRate,
		kind:      mix(h2) % 3,
		noiseSeed: mix(mix(h2)),
	}
}

const badGateway = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

func (s *Sim) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := s.drawFault()
		if d.f.Delay > 0 {
			t := time.NewTimer(d.f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch {
		case d.f.Down:
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		case d.fail:
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		case !d.garble:
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		body := rec.body.Bytes()
		switch d.kind {
		case 0: // the connection died half-way through the document
			body = body[:len(body)/2]
		case 1: // a proxy in front answered instead
			w.Header().Set("Content-Type", "text/html")
			body = []byte(badGateway)
		default:
			body = noise(d.noiseSeed, 64+int(d.noiseSeed%448))
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.code)
		w.Write(body)
	})
}

// noise returns n bytes derived from seed.
func noise(seed uint64, n int) []byte {
	out := make([]byte, n)
	h := seed
	for i := range out {
		if i%8 == 0 {
			h = mix(h)
		}
		out[i] = byte(h >> (8 * (i % 8)))
	}
	return out
}

// recorder buffers a response so that it can be garbled before sending.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
