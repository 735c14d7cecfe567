package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ${NAME}, ${NAME:-default} and ${env:NAME} work; anything else is refused
// with its key path, never used literally.
func TestVariableReferences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(`server: "${HOST_A}-${env:HOST_B}"
log_level: ${LEVEL:-warn}
state_dir: ${env:STATE:-/srv/state}
tags: {dc: "${EMPTY:-fra}", zone: "${EMPTY}x"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{"HOST_A=mta", "HOST_B=01", "EMPTY="})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != "mta-01" || cfg.LogLevel != "warn" || cfg.StateDir != "/srv/state" || cfg.Tags["dc"] != "fra" || cfg.Tags["zone"] != "x" {
		t.Errorf("server %q, log_level %q, state_dir %q, tags %v", cfg.Server, cfg.LogLevel, cfg.StateDir, cfg.Tags)
	}
	if err := os.WriteFile(path, []byte("server: ${file:/etc/x}\nlog_level: ${env:}\nstate_dir: ${NOPE}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path, nil)
	for _, want := range []string{
		"server: ${file:/etc/x} is no variable reference: use ${NAME}, ${NAME:-default} or ${env:NAME}",
		"log_level: ${env:} is no variable reference",
		"state_dir: ${NOPE} is not set in the environment",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
