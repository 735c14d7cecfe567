package sim

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSelfSignedCert(t *testing.T) {
	cert, pemBytes, err := SelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Clock: newClock(testNow).Now})
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("PEM not usable")
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get(srv.URL + "/status?format=json")
	if err != nil {
		t.Fatalf("client trusting the PEM: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}

	// Without the PEM the certificate is, as on a real 5.0 box, untrusted.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if resp, err := plain.Get(srv.URL + "/status"); err == nil {
		resp.Body.Close()
		t.Error("a client without the PEM trusted the certificate")
	}

	if _, _, err := SelfSignedCert("mta01.example", "192.0.2.1"); err != nil {
		t.Errorf("named hosts: %v", err)
	}
}
