package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

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

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Load builds the configuration from the defaults, the YAML file at path (none
// when path is empty) and the environment (as os.Environ returns it). It
// returns every problem it finds — unknown keys, unset ${VAR}s, unreadable
// secret files — joined into one error, each naming its key path.
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
	for key, v := range k.All() {
		nv, errs := expand(v, lookup)
		for _, e := range errs {
			problems = append(problems, fmt.Errorf("%s: %w", keyPath(key), e))
		}
		expanded[key] = nv
	}
	k = koanf.New(delim)
	if err := k.Load(confmap.Provider(expanded, delim), nil); err != nil {
		return Config{}, fmt.Errorf("expand variables: %w", err)
	}

	cfg := Default()
	for _, key := range k.Keys() {
		if !knownKey(reflect.TypeOf(cfg), strings.Split(key, delim)) {
			problems = append(problems, fmt.Errorf("%s: unknown key", keyPath(key)))
		}
	}
	err = k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc()),
		WeaklyTypedInput: true,
		TagName:          "koanf",
	}})
	if err != nil {
		problems = append(problems, decodeProblems(err)...)
	}

	problems = append(problems, readSecret(&cfg.API.APIKey, cfg.API.APIKeyFile, "api.api_key")...)
	problems = append(problems, readSecret(&cfg.Sinks.Influx.Token, cfg.Sinks.Influx.TokenFile, "sinks.influx.token")...)
	problems = append(problems, readHeaders(&cfg.Sinks.OTLP)...)

	if cfg.Server == "" {
		if h, err := os.Hostname(); err == nil {
			cfg.Server = h
		}
	}
	return cfg, errors.Join(problems...)
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
			name := ref[2 : len(ref)-1]
			val, ok := lookup(name)
			if !ok {
				errs = append(errs, fmt.Errorf("${%s} is not set in the environment", name))
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

// decodeProblems splits mapstructure's combined error into one error per key.
func decodeProblems(err error) []error {
	var de *mapstructure.DecodeError
	var out []error
	for _, e := range unwrapAll(err) {
		if errors.As(e, &de) {
			out = append(out, fmt.Errorf("%s: %v", keyPath(de.Name()), de.Unwrap()))
			continue
		}
		out = append(out, e)
	}
	return out
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

func keyPath(k string) string { return strings.ReplaceAll(k, delim, ".") }

// knownKey tells whether path names a field of t (by koanf tag), or lies
// inside a map field, whose keys are free.
func knownKey(t reflect.Type, path []string) bool {
	for len(path) > 0 {
		switch t.Kind() {
		case reflect.Map:
			return true
		case reflect.Struct:
			found := false
			for i := 0; i < t.NumField(); i++ {
				if f := t.Field(i); f.Tag.Get("koanf") == path[0] {
					t, path, found = f.Type, path[1:], true
					break
				}
			}
			if !found {
				return false
			}
		default:
			return false // a leaf has no sub-keys
		}
	}
	return true
}

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
