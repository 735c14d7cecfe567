package main

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// noonZone is a zone in which it is about noon now: accounting files
// written in it do not rotate at midnight during a test, whenever it runs.
func noonZone() *time.Location {
	now := time.Now().UTC()
	return time.FixedZone("noon", (12-now.Hour())*3600)
}

// listenNotify plays systemd's side of Type=notify on a socket at path for
// the test's life: it returns what was said so far, space-separated.
func listenNotify(t *testing.T, path string) func() string {
	t.Helper()
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	var mu sync.Mutex
	var notes []string
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			notes = append(notes, string(buf[:n]))
			mu.Unlock()
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(notes, " ")
	}
}
