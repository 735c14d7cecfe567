package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pmta-agent/pmta-agent/agent/acct"
)

// A list in the file replaces the default list: nothing of the default
// views leaks into the user's.
func TestViewsReplaceTheDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(`acct:
  globs: [/x/*.csv]
  views:
    - {name: pmta_acct, tags: [type, isp]}
    - {name: pmta_acct_vm, tags: [type, vmta]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []acct.View{{Name: "pmta_acct", Tags: []string{"type", "isp"}}, {Name: "pmta_acct_vm", Tags: []string{"type", "vmta"}}}
	if !reflect.DeepEqual(cfg.Acct.Views, want) {
		t.Errorf("views %+v, want %+v", cfg.Acct.Views, want)
	}
	if !reflect.DeepEqual(cfg.Acct.Globs, []string{"/x/*.csv"}) {
		t.Errorf("globs %v", cfg.Acct.Globs)
	}
	if errs := cfg.Acct.Validate(); len(errs) > 0 {
		t.Errorf("validate: %v", errs)
	}
}
