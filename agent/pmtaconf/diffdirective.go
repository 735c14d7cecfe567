package pmtaconf

import (
	"slices"
	"strings"
)

// keyed are the directives written once per thing they configure, that
// thing named by their first argument: a domain-macro per macro, an
// http-access rule per address, an smtp-source-host per IP. Each key is
// compared on its own, so that "domain-macro gmail …" changing reads as
// that macro changing, not as one line removed and another added.
var keyed = map[string]struct {
	key   func(string) string // normalises the key
	value func([]string) string
	// ordered: PowerMTA takes the first rule that matches, so the order of
	// the keys is part of the configuration.
	ordered bool
}{
	"domain-macro":     {key: strings.ToLower, value: domainSet},
	"http-access":      {key: cidrKey, value: lowerValue, ordered: true},
	"http-mgmt-source": {key: cidrKey, value: lowerValue, ordered: true},
	"smtp-source-host": {key: strings.ToLower, value: lowerValue},
}

// item is one value of a directive: cmp is what is compared, show what a
// change prints (secrets masked).
type item struct {
	cmp, show string
	masked    bool
	pos       Pos
}

func diffDirective(out *[]Change, path, name string, olds, news []Directive) {
	k, isKeyed := keyed[name]
	if !isKeyed {
		diffItems(out, path, name, "", items(name, olds, 0, exact), items(name, news, 0, exact))
		return
	}
	type group struct{ olds, news []Directive }
	groups := map[string]*group{}
	var oldOrder, newOrder []string
	add := func(ds []Directive, isNew bool) {
		for _, d := range ds {
			key := ""
			if len(d.Args) > 0 {
				key = k.key(d.Args[0])
			}
			g := groups[key]
			if g == nil {
				g = &group{}
				groups[key] = g
			}
			if isNew {
				if len(g.news) == 0 {
					newOrder = append(newOrder, key)
				}
				g.news = append(g.news, d)
			} else {
				if len(g.olds) == 0 {
					oldOrder = append(oldOrder, key)
				}
				g.olds = append(g.olds, d)
			}
		}
	}
	add(olds, false)
	add(news, true)
	for _, key := range union(newOrder, oldOrder) {
		g := groups[key]
		shownKey := key
		if ds := append(slices.Clone(g.news), g.olds...); len(ds) > 0 && len(ds[0].Args) > 0 {
			shownKey = quoteArgs(ds[0].Args[:1]) // as the operator wrote it
		}
		diffItems(out, path, name, shownKey, items(name, g.olds, 1, k.value), items(name, g.news, 1, k.value))
	}
	if !k.ordered {
		return
	}
	// The rules both versions have, in each version's order.
	both := func(order []string, other []string) []string {
		var out []string
		for _, key := range order {
			if slices.Contains(other, key) {
				out = append(out, key)
			}
		}
		return out
	}
	o, n := both(oldOrder, newOrder), both(newOrder, oldOrder)
	if !slices.Equal(o, n) {
		show := func(keys []string) string {
			var out []string
			for _, key := range keys {
				out = append(out, quoteArgs(groups[key].news[0].Args[:1]))
			}
			return strings.Join(out, ", ")
		}
		*out = append(*out, Change{Op: Modified, Block: path, Directive: name, Key: "order",
			Old: show(o), New: show(n), Pos: news[0].Pos})
	}
}

// items returns the values of the directives ds from their argument skip
// on, compared as cmp says.
func items(name string, ds []Directive, skip int, cmp func([]string) string) []item {
	secret := IsSecret(name)
	out := make([]item, 0, len(ds))
	for _, d := range ds {
		args := d.Args[min(skip, len(d.Args)):]
		it := item{cmp: cmp(args), pos: d.Pos}
		switch masked, ok := MaskArgs(args); {
		case secret:
			it.show, it.masked = Masked, true
		case ok:
			it.show, it.masked = quoteArgs(masked), true
		default:
			it.show = quoteArgs(args)
		}
		out = append(out, it)
	}
	return out
}

// diffItems compares the values of one directive (of one key) in a block:
// one against one, or as sets.
func diffItems(out *[]Change, path, name, key string, olds, news []item) {
	change := func(op Op, o, n item) {
		c := Change{Op: op, Block: path, Directive: name, Key: key, Old: o.show, New: n.show,
			Masked: o.masked || n.masked, Pos: n.pos}
		if op == Removed {
			c.Pos = o.pos
		}
		*out = append(*out, c)
	}
	if len(olds) == 1 && len(news) == 1 {
		if olds[0].cmp != news[0].cmp {
			change(Modified, olds[0], news[0])
		}
		return
	}
	gone, came := minus(olds, news), minus(news, olds)
	if len(gone) == 1 && len(came) == 1 {
		change(Modified, gone[0], came[0])
		return
	}
	for _, o := range gone {
		change(Removed, o, item{})
	}
	for _, n := range came {
		change(Added, item{}, n)
	}
}

// minus returns the items of a that b does not match, counting repeats: a
// value written twice in a and once in b leaves one.
func minus(a, b []item) []item {
	left := map[string]int{}
	for _, it := range b {
		left[it.cmp]++
	}
	var out []item
	for _, it := range a {
		if left[it.cmp] > 0 {
			left[it.cmp]--
			continue
		}
		out = append(out, it)
	}
	return out
}

// exact compares the words as PowerMTA reads them: quotes removed and the
// blanks between words collapsed (the parser already did both); a quoted
// word with a blank inside stays one word.
func exact(args []string) string {
	if len(args) == 1 {
		if b, ok := boolWord(args[0]); ok {
			return b
		}
	}
	return strings.Join(args, "\x00")
}

// boolWord reads a value PowerMTA takes as a boolean: yes and true (and on)
// are one value, no, false and off the other, whatever their case — so
// "iso-times yes" rewritten as "iso-times true" is no change. Digits are
// left alone: 1 is a count as often as a flag.
func boolWord(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "yes", "true", "on":
		return "\x01true", true
	case "no", "false", "off":
		return "\x01false", true
	}
	return "", false
}

// lowerValue compares keywords (http-access levels, host names) without
// regard to case.
func lowerValue(args []string) string { return strings.ToLower(exact(args)) }

// domainSet compares a domain-macro's domains as a set: PowerMTA separates
// them with commas or blanks, and domain names have no case.
func domainSet(args []string) string {
	var doms []string
	for _, a := range args {
		for _, d := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			doms = append(doms, strings.ToLower(d))
		}
	}
	slices.Sort(doms)
	return strings.Join(slices.Compact(doms), ",")
}

// cidrKey normalises an http-access address the way PowerMTA reads it, so
// that "127.0.0.1" and "127.0.0.1/32" are one rule.
func cidrKey(s string) string {
	if p, err := parseCIDR(s); err == nil {
		return p.Masked().String()
	}
	return strings.ToLower(s)
}

// quoteArgs writes words as a configuration line would: a word with a
// blank, a quote, a "#" or nothing in it quoted, the rest as they are.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\"#\\") {
			out[i] = a
			continue
		}
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
	}
	return strings.Join(out, " ")
}
