package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// secretKeys hold secrets: YAML never shows their values. Each has a
// *_file option for the secret to live in its own file.
var secretKeys = map[string]string{
	"api.api_key":        "api.api_key_file",
	"sinks.influx.token": "sinks.influx.token_file",
	"sinks.otlp.headers": "sinks.otlp.headers_file",
}

// YAML renders the configuration as a YAML file that loads to the same
// settings (what `pmta-agent init` prints): every key, in the order of the
// configuration's types; each setting taken from PowerMTA's configuration
// commented out, with its value and the line it came from, so that the file
// goes on following PowerMTA's (uncomment one to pin it); a secret's value
// never shown, only a
// comment saying it is set and where it belongs (a key derived from
// PowerMTA's http-api-key is read from there again at each start).
func (c Config) YAML() []byte {
	p := printer{derived: c.Derived}
	p.fields(reflect.ValueOf(c), "", 0)
	return []byte(p.b.String())
}

type printer struct {
	b       strings.Builder
	derived *Derivation
}

// derivedKey reports whether key's value came from PowerMTA's
// configuration: printed commented out, so that a saved file goes on
// following PowerMTA's (a changed port, a new <acct-file>).
func (p *printer) derivedKey(key string) bool {
	if p.derived == nil {
		return false
	}
	_, ok := p.derived.Origins[key]
	return ok && key != "pipeline.isp_map"
}

func (p *printer) comment(key string) string {
	if p.derived == nil {
		return ""
	}
	if o, ok := p.derived.Origins[key]; ok {
		return "  # from PowerMTA's config: " + o
	}
	return ""
}

func (p *printer) fields(v reflect.Value, prefix string, depth int) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if squashed(f) {
			p.fields(v.Field(i), prefix, depth)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		p.value(prefix+tag, tag, v.Field(i), depth)
	}
}

func (p *printer) line(depth int, text string) {
	p.b.WriteString(strings.Repeat("  ", depth))
	p.b.WriteString(text)
	p.b.WriteByte('\n')
}

func (p *printer) value(key, name string, v reflect.Value, depth int) {
	if file, secret := secretKeys[key]; secret && !v.IsZero() && v.Len() > 0 {
		// Only a comment: an empty value would count as set, and hide a
		// key that PowerMTA's configuration gives at each start.
		if c := p.comment(key); c != "" {
			p.line(depth, "# "+name+": not shown;"+strings.TrimPrefix(c, "  #")+" — read from there at each start")
		} else {
			p.line(depth, "# "+name+": set, not shown; keep it in the file that "+file+" names")
		}
		return
	}
	if v.Kind() == reflect.Struct { // even a Stringer (a sink's redacting String)
		p.line(depth, name+":"+p.comment(key))
		p.fields(v, key+".", depth+1)
		return
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
		if v.Len() == 0 {
			p.line(depth, name+": []"+p.comment(key))
			return
		}
		p.line(depth, name+":"+p.comment(key))
		for i := range v.Len() {
			var item printer
			item.fields(v.Index(i), "", 0)
			for j, l := range strings.Split(strings.TrimSuffix(item.b.String(), "\n"), "\n") {
				lead := "  "
				if j == 0 {
					lead = "- "
				}
				p.line(depth+1, lead+l)
			}
		}
		return
	}
	if key == "pipeline.isp_map" && p.derived != nil && len(p.derived.ISPAdded) > 0 {
		// Only the file's own rules; the macros' come back at each start.
		own := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			if !slices.Contains(p.derived.ISPAdded, k.String()) {
				own.SetMapIndex(k, v.MapIndex(k))
			}
		}
		p.line(depth, name+": "+scalar(own)+p.comment(key)+" (not listed: read at each start)")
		return
	}
	if p.derivedKey(key) {
		p.line(depth, "# "+name+": "+scalar(v)+p.comment(key)+" (read at each start)")
		return
	}
	p.line(depth, name+": "+scalar(v)+p.comment(key))
}

// scalar renders one value in flow style: durations and sizes as they are
// written ("10s", "1GiB"), lists and maps on one line, strings quoted when
// YAML needs it.
func scalar(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case fmt.Stringer:
		return quote(x.String())
	}
	switch v.Kind() {
	case reflect.String:
		return quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = scalar(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		items := make([]string, len(keys))
		for i, k := range keys {
			key := quote(k)
			if len(key) > 1000 {
				// YAML's implicit keys stop at 1024 characters; an
				// explicit one has no limit.
				key = "? " + key + " "
			}
			items[i] = key + ": " + scalar(v.MapIndex(reflect.ValueOf(k)))
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	return quote(fmt.Sprint(v.Interface()))
}

// quote returns s as a YAML scalar: as it is when YAML reads it back as
// the same string, double-quoted otherwise. YAML is UTF-8 and has no way to
// write other bytes: invalid UTF-8 is printed as U+FFFD.
func quote(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if s != "" && !strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`\n\t") && strings.TrimSpace(s) == s {
		var back any
		if yaml.Unmarshal([]byte(s), &back) == nil {
			if str, ok := back.(string); ok && str == s {
				return s
			}
		}
	}
	b, _ := yaml.Marshal(s)
	out := strings.TrimSuffix(string(b), "\n")
	if !strings.HasPrefix(out, `"`) && !strings.HasPrefix(out, "'") {
		out = strconv.Quote(s)
	}
	return out
}
