package main

import (
	"os"
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
