package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent/bytesize"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable the agent reads. A double
// underscore separates levels: PMTA_AGENT_SINKS__INFLUX__TOKEN is
// sinks.influx.token.
const EnvPrefix = "PMTA_AGENT_"

// koanf splits key paths on this. Not ".", because map keys of the
// configuration are domain names ("example.net") that must stay whole.
const delim = "/"

// ErrRead marks a configuration that could not be read at all (a missing or
// malformed file): nothing else is checked then.
var ErrRead = errors.New("cannot read the configuration")

// varRef is any ${…} in a value: ${NAME}, ${NAME:-default} and ${env:NAME}
// (the OpenTelemetry Collector's spelling, also with :-default) are
// expanded; anything else is refused rather than used literally.
var varRef = regexp.MustCompile(`\$\{([^}]*)\}`)

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// resolveRef returns the value of one ${…} reference, without its braces.
func resolveRef(ref string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(strings.TrimPrefix(ref, "env:"), ":-")
	if !varName.MatchString(name) {
		return "", fmt.Errorf("${%s} is no variable reference: use ${NAME}, ${NAME:-default} or ${env:NAME}", ref)
	}
	val, ok := lookup(name)
	switch {
	case hasDef && (!ok || val == ""):
		return def, nil
	case !ok:
		return "", fmt.Errorf("${%s} is not set in the environment", name)
	}
	return val, nil
}

// Load builds the configuration from the defaults, the YAML file at path (none
// when path is empty) and the environment (as os.Environ returns it). It
// returns every problem it finds — unknown keys, wrongly typed values, unset
// ${VAR}s, unreadable secret files — joined into one error, each naming its
// key path, sorted by it. A value with a problem is left at its default.
func Load(path string, environ []string) (Config, error) {
	k := koanf.New(delim)
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("%w: file %s: %w", ErrRead, path, err)
		}
	}
	err := k.Load(env.Provider(delim, env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(key, value string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
			return strings.ReplaceAll(key, "__", delim), value
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("%w: environment: %w", ErrRead, err)
	}

	var problems []error
	lookup := envLookup(environ)
	expanded := map[string]any{}
	unset := map[string]bool{} // keys with an unset ${VAR}: reported here, not decoded
	for key, v := range k.All() {
		nv, errs := expand(v, lookup)
		for _, e := range errs {
			problems = append(problems, fmt.Errorf("%s: %w", keyPath(key), e))
		}
		if len(errs) > 0 {
			unset[key] = true
		}
		expanded[key] = nv
	}
	good, errs := checkKeys(expanded, unset)
	problems = append(problems, errs...)
	k = koanf.New(delim)
	if err := k.Load(confmap.Provider(good, delim), nil); err != nil {
		return Config{}, fmt.Errorf("expand variables: %w", err)
	}

	cfg := Default()
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: decoderConfig(nil)}); err != nil {
		// checkKeys decoded every value already; this is a safety net.
		problems = append(problems, decodeProblems(err)...)
	}

	set := func(key string) bool { // key as written: "api.url"
		key = strings.ReplaceAll(key, ".", delim)
		for k := range good {
			if k == key || strings.HasPrefix(k, key+delim) {
				return true
			}
		}
		return false
	}
	problems = append(problems, applyPMTA(&cfg, set)...)
	problems = append(problems, readSecret(&cfg.API.APIKey, cfg.API.APIKeyFile, "api.api_key")...)
	problems = append(problems, readSecret(&cfg.Sinks.Influx.Token, cfg.Sinks.Influx.TokenFile, "sinks.influx.token")...)
	problems = append(problems, readHeaders(&cfg.Sinks.OTLP)...)

	if cfg.Server == "" {
		if h, err := os.Hostname(); err == nil {
			cfg.Server = h
		}
	}
	return cfg, errors.Join(sortProblems(problems)...)
}

// decoderConfig is how a value becomes a field of Config, for the whole
// configuration and for checkKeys alike.
func decoderConfig(result any) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc()),
		WeaklyTypedInput: true,
		// A list or map in the file replaces the default, never merges
		// into it: merged, acct.views' second item would keep fields of
		// the second default view (a domain cap the user never set).
		ZeroFields: true,
		TagName:    "koanf",
		Result:     result,
	}
}

// sortProblems orders problems by their text, which starts with the key path,
// so that check-config prints the same list in the same order every time, and
// drops repeats.
func sortProblems(problems []error) []error {
	slices.SortStableFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return slices.CompactFunc(problems, func(a, b error) bool { return a.Error() == b.Error() })
}

// checkKeys returns the keys of the flat configuration map that name a field
// and hold a value of its type, and a problem for each of the others. Each
// value is decoded on its own into a zero value of its field's type, so that
// every wrongly typed value is reported with its key path as koanf spells it
// (map keys such as "example.net" stay whole) and in words an operator reads,
// while the rest of the configuration still loads. Keys in skip are left out
// unchecked.
func checkKeys(flat map[string]any, skip map[string]bool) (map[string]any, []error) {
	root := reflect.TypeOf(Config{})
	good := make(map[string]any, len(flat))
	var problems []error
	for key, v := range flat {
		path := strings.Split(key, delim)
		t, n, known := fieldAt(root, path)
		switch {
		case !known:
			// One problem for an unknown section, not one per key in it.
			problems = append(problems, fmt.Errorf("%s: unknown key", strings.Join(path[:n+1], ".")))
		case n < len(path):
			problems = append(problems, fmt.Errorf("%s: cannot use a map as %s", strings.Join(path[:n], "."), describe(t)))
		case skip[key]:
		default:
			if errs := typeProblems(keyPath(key), t, v); len(errs) > 0 {
				problems = append(problems, errs...)
				continue
			}
			good[key] = v
		}
	}
	return good, problems
}

// fieldAt follows path from t through struct fields (by koanf tag) and map
// keys, and returns the type found there and how many elements of path it
// took. known is false when path[n] names no field; n < len(path) with known
// means path goes on below a value that is not a map or a struct.
func fieldAt(t reflect.Type, path []string) (_ reflect.Type, n int, known bool) {
	for ; n < len(path); n++ {
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem() // map keys are free
		case reflect.Struct:
			f, ok := fieldByTag(t, path[n])
			if !ok {
				return t, n, false
			}
			t = f.Type
		default:
			return t, n, true
		}
	}
	return t, n, true
}

// fieldByTag finds the field whose koanf tag is name, also inside embedded
// structs squashed into t (a sink's settings and its buffer share one
// section); fields tagged "-" are not keys.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if squashed(f) {
			if g, ok := fieldByTag(f.Type, name); ok {
				return g, true
			}
			continue
		}
		if tag == name && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// squashed reports whether f is an embedded struct whose fields are keys of
// the struct embedding it (koanf:",squash").
func squashed(f reflect.StructField) bool {
	return f.Anonymous && f.Type.Kind() == reflect.Struct && strings.HasSuffix(f.Tag.Get("koanf"), ",squash")
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// typeProblems decodes v into a new value of type t, as Load does, and says
// what is wrong when that fails. A list is checked element by element so
// that each problem names its index. Values are shown only when they are
// scalars that failed to parse: strings always decode into string fields, so
// secrets never appear.
func typeProblems(key string, t reflect.Type, v any) []error {
	dec, err := mapstructure.NewDecoder(decoderConfig(reflect.New(t).Interface()))
	if err != nil {
		return []error{fmt.Errorf("%s: %w", key, err)}
	}
	err = dec.Decode(v)
	if err == nil {
		return nil
	}
	if list, ok := v.([]any); ok && t.Kind() == reflect.Slice {
		var errs []error
		for i, e := range list {
			errs = append(errs, typeProblems(fmt.Sprintf("%s[%d]", key, i), t.Elem(), e)...)
		}
		if len(errs) > 0 {
			return errs
		}
	}
	var de *mapstructure.DecodeError
	if _, ok := v.(string); ok && reflect.PointerTo(t).Implements(textUnmarshaler) && errors.As(err, &de) {
		return []error{fmt.Errorf("%s: %w", key, de.Unwrap())} // the type's own words, as bytesize.Size's
	}
	switch v := v.(type) {
	case map[string]any:
		return []error{fmt.Errorf("%s: cannot use a map as %s", key, describe(t))}
	case []any:
		return []error{fmt.Errorf("%s: cannot use a list as %s", key, describe(t))}
	case string:
		return []error{fmt.Errorf("%s: cannot parse %q as %s", key, v, describe(t))}
	default:
		return []error{fmt.Errorf("%s: cannot parse %v as %s", key, v, describe(t))}
	}
}

// describe names what a value of type t is written as.
func describe(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration"
	case reflect.TypeFor[bytesize.Size]():
		return "a size"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a map of settings"
	case reflect.Map:
		return "a map"
	}
	return t.String()
}

// readSecret fills *dst from file when file is set. The secret's value never
// appears in an error.
func readSecret(dst *string, file, key string) []error {
	if file == "" {
		return nil
	}
	if *dst != "" {
		return []error{fmt.Errorf("%s and %s_file are both set: keep one", key, key)}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return []error{fmt.Errorf("%s_file: %w", key, err)}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return []error{fmt.Errorf("%s_file: %s is empty", key, file)}
	}
	*dst = s
	return nil
}

func envLookup(environ []string) func(string) (string, bool) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// expand replaces ${VAR} in strings (also inside lists). Only the braced
// form is expanded, so a password holding a lone "$" stays as written.
func expand(v any, lookup func(string) (string, bool)) (any, []error) {
	switch v := v.(type) {
	case string:
		var errs []error
		out := varRef.ReplaceAllStringFunc(v, func(ref string) string {
			val, err := resolveRef(ref[2:len(ref)-1], lookup)
			if err != nil {
				errs = append(errs, err)
			}
			return val
		})
		return out, errs
	case []any:
		var errs []error
		out := make([]any, len(v))
		for i, e := range v {
			var ee []error
			out[i], ee = expand(e, lookup)
			errs = append(errs, ee...)
		}
		return out, errs
	}
	return v, nil
}

// decodeProblems splits mapstructure's error, which wraps a join of one
// error per key, into one error per key.
func decodeProblems(err error) []error {
	var out []error
	for _, e := range unwrapAll(err) {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) {
			out = append(out, fmt.Errorf("%s: %v", keyPath(de.Name()), de.Unwrap()))
			continue
		}
		out = append(out, e)
	}
	return out
}

// unwrapAll flattens joined errors, also behind a wrapping message, down to
// the first *mapstructure.DecodeError (which keeps its key).
func unwrapAll(err error) []error {
	if _, ok := err.(*mapstructure.DecodeError); ok {
		return []error{err}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return unwrapAll(inner)
		}
	}
	return []error{err}
}

func keyPath(k string) string { return strings.ReplaceAll(k, delim, ".") }

// readHeaders adds the "Name: value" lines of sinks.otlp.headers_file to
// sinks.otlp.headers (a header in both is an error). Values never appear in
// an error.
func readHeaders(o *OTLP) []error {
	if o.HeadersFile == "" {
		return nil
	}
	b, err := os.ReadFile(o.HeadersFile)
	if err != nil {
		return []error{fmt.Errorf("sinks.otlp.headers_file: %w", err)}
	}
	var errs []error
	if o.Headers == nil {
		o.Headers = map[string]string{}
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok || name == "":
			errs = append(errs, fmt.Errorf("sinks.otlp.headers_file: line %d is not \"Name: value\"", i+1))
		case o.Headers[name] != "":
			errs = append(errs, fmt.Errorf("sinks.otlp.headers_file: header %s is also in sinks.otlp.headers", name))
		default:
			o.Headers[name] = value
		}
	}
	return errs
}
