package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

const examplePath = "../../deploy/pmta-agent.example.yaml"

// The example file documents every option: it must load, validate, and name
// each leaf of Config.
func TestExampleConfigCoversEveryOption(t *testing.T) {
	cfg, err := Load(examplePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	k := koanf.New(delim)
	if err := k.Load(file.Provider(examplePath), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, key := range k.Keys() {
		have[keyPath(key)] = true
	}
	for _, key := range k.MapKeys("") {
		have[key] = true
	}
	// The settings PowerMTA's configuration gives are shown commented
	// out: set, they would stop following it.
	text, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	derivable := map[string]bool{"api.enabled": true, "api.url": true, "api.tls.ca_file": true, "acct.enabled": true, "acct.globs": true}
	var missing []string
	for _, leaf := range leaves(reflect.TypeOf(Config{}), "") {
		set := have[leaf] || k.Exists(strings.ReplaceAll(leaf, ".", delim))
		name := leaf[strings.LastIndex(leaf, ".")+1:]
		switch {
		case derivable[leaf] && set:
			t.Errorf("%s sets %s, which PowerMTA's configuration should give: show it commented out", examplePath, leaf)
		case derivable[leaf] && !strings.Contains(string(text), "# "+name+":"):
			missing = append(missing, leaf+" (commented out)")
		case !derivable[leaf] && !set:
			missing = append(missing, leaf)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not show: %s", examplePath, strings.Join(missing, ", "))
	}
}

func leaves(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		switch {
		case tag == "-":
			continue // set by the wiring, not a key
		case squashed(f):
			out = append(out, leaves(f.Type, prefix)...)
			continue
		}
		name := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
			out = append(out, leaves(f.Type, name+".")...)
			continue
		}
		out = append(out, name)
	}
	return out
}
