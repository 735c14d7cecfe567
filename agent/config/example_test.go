package config

import (
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
	var missing []string
	for _, leaf := range leaves(reflect.TypeOf(Config{}), "") {
		if !have[leaf] && !k.Exists(strings.ReplaceAll(leaf, ".", delim)) {
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
