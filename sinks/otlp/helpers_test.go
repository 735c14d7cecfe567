package otlp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func tags(kv ...string) []agent.Tag {
	out := make([]agent.Tag, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, agent.Tag{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func fields(kv ...any) []agent.Field {
	out := make([]agent.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, agent.Field{Key: kv[i].(string), Value: kv[i+1]})
	}
	return out
}

// t0 is a fixed, whole-minute time: points keep their own timestamps, so
// the tests check exact times.
var t0 = time.Date(2024, 1, 15, 15, 25, 0, 0, time.UTC)

// familyPoints returns one point of every measurement family of the data
// contract, for server mx1.
func familyPoints() []agent.Point {
	return []agent.Point{
		agent.NewPoint("pmta_status", tags("server", "mx1"), fields(
			"up", int64(1), "queue_rcp", int64(84312), "queue_kb", 4188302.6, "conn_out", int64(618),
			"out_rcp_total", int64(18342211), "out_kb_total", 912455310.4, "out_rcp_per_sec", 116.85,
			"spool_init_pct", 100.0, "shutting_down", int64(0), "uptime_s", int64(285005)), t0),
		agent.NewPoint("pmta_queue", tags("server", "mx1", "domain", "gmail.com", "isp", "google", "vmta", "vmta-gm-011"),
			fields("rcp", int64(9120), "kb", 441870.2, "conn", int64(20), "paused", int64(0), "backoff", int64(1)), t0),
		agent.NewPoint("pmta_domain", tags("server", "mx1", "domain", "yahoo.com", "isp", "yahoo"),
			fields("rcp", int64(24410), "kb", 1203398.0, "conn", int64(2), "delivered", int64(150230), "deferred", int64(9120)), t0),
		agent.NewPoint("pmta_vmta", tags("server", "mx1", "vmta", "vmta-yh-021"),
			fields("rcp", int64(18342), "domains", int64(212), "msgs_per_sec", 61.5), t0),
		agent.NewPoint("pmta_acct", tags("server", "mx1", "type", "d", "domain", "gmail.com", "isp", "google",
			"vmta", "vmta-gm-011", "pool", "p1", "source_ip", "192.0.2.10", "bounce_cat", "", "dsn_class", "2"),
			fields("count", int64(41), "bytes", int64(2048000), "queued_s_sum", int64(930), "queued_s_max", int64(120),
				"interval_s", int64(60)), t0),
		agent.NewPoint("pmta_acct_diag", tags("server", "mx1", "type", "b", "isp", "yahoo", "diag", "421 4.7.0 [TSS04] Messages from # temporarily deferred"),
			fields("count", int64(7), "interval_s", int64(60)), t0),
		agent.NewPoint("pmta_agent", tags("server", "mx1", "component", "poller"),
			fields("polls", int64(12), "errors", int64(1), "last_duration_s", 0.25), t0),
	}
}

// writeCert makes a self-signed certificate for 127.0.0.1 (a CA as well, so
// it can sign client certificates) and writes it and its key as PEM files.
func writeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", "collector.test"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  ca == nil,
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert, key, pair
}
