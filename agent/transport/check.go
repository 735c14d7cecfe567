package transport

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// Validate reports every problem of the TLS settings, each starting with
// its key path under key, the tls section's own ("tls.ca_file: cannot be
// read: …", "tls: cert_file and key_file go together").
func (c TLSConfig) Validate(key string) []error {
	var errs []error
	for _, f := range []struct{ name, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: cannot be read: %v", key, f.name, err))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file go together", key))
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		errs = append(errs, fmt.Errorf("%s.insecure_skip_verify: is set together with ca_file; the CA would be ignored", key))
	}
	return errs
}

// CheckURL reports what is wrong with the URL of a server the agent talks
// to, or nil: it must be http:// or https:// with a host and no credentials
// (those go in the token, api_key or headers options, which are kept out of
// logs). The message never repeats a password.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("must be set")
	case err != nil:
		// url.Parse quotes the whole URL, credentials included: say less.
		return errors.New("is not a valid URL")
	case u.User != nil:
		return errors.New("must not carry credentials; use the token, api_key or headers options")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must start with http:// or https://", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("%q has no host", u.Redacted())
	}
	return nil
}

// CleartextRemote tells whether raw is an http:// URL to a host other than
// this one: a secret sent there crosses the network unencrypted.
func CleartextRemote(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	return !LoopbackHost(u.Hostname())
}

// LoopbackHost tells whether h names this machine: localhost or a loopback
// address.
func LoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
