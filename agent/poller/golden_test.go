package poller

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGolden serves recorded documents over HTTP, runs one round on a fixed
// clock and compares the line protocol with testdata/<case>.golden.
func TestGolden(t *testing.T) {
	cases := []struct {
		name        string
		cfg         Config
		wantSkipped int64
	}{
		{name: "pmta-json", cfg: Config{Dialect: "pmta", Format: "json", MaxItems: 1000}},
		{name: "pmta-xml", cfg: Config{Dialect: "pmta", Format: "xml", MaxItems: 1000}},
		// data.mta.status, numeric strings, yes/no, a lone queue object, bad rows.
		{name: "pmta-quirks", cfg: Config{Format: "json"}, wantSkipped: 3},
		{name: "seed", cfg: Config{Dialect: "seed"}, wantSkipped: 2},
		// No header rows (optional columns absent), no active_connections.
		{name: "seed-headerless", cfg: Config{Dialect: "seed"}, wantSkipped: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveDir(t, filepath.Join("testdata", tc.name), nil)
			cfg := allEndpoints(tc.cfg)
			cfg.URL = srv.URL
			p, _ := newTestPoller(t, cfg, nil)
			b, err := p.Gather(context.Background())
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			if b.Source != "api" {
				t.Errorf("batch source = %q, want api", b.Source)
			}
			got := agent.LineProtocol(b.Points)
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("line protocol differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			if v := statValue(t, p, "rows_skipped"); v != tc.wantSkipped {
				t.Errorf("rows_skipped = %d, want %d", v, tc.wantSkipped)
			}
			if v := statValue(t, p, "up"); v != 1 {
				t.Errorf("stat up = %d, want 1", v)
			}
		})
	}
}

// statValue returns the int64 stat key of p.
func statValue(t *testing.T, p *Poller, key string) int64 {
	t.Helper()
	for _, f := range p.Stats() {
		if f.Key == key {
			v, ok := f.Value.(int64)
			if !ok {
				t.Fatalf("stat %s is %T, want int64", key, f.Value)
			}
			return v
		}
	}
	t.Fatalf("no stat %s", key)
	return 0
}

// TestJSONAndXMLAgree: the same PowerMTA state read as JSON and as XML gives
// the same points.
func TestJSONAndXMLAgree(t *testing.T) {
	j, err := os.ReadFile(filepath.Join("testdata", "pmta-json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := os.ReadFile(filepath.Join("testdata", "pmta-xml.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j, x) {
		t.Errorf("pmta-json.golden and pmta-xml.golden differ")
	}
}
