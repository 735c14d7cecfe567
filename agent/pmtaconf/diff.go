package pmtaconf

import (
	"slices"
	"strings"
)

// Op is what happened to a directive or a block between two versions of
// the configuration.
type Op int

const (
	// Modified: the directive is in both, with another value.
	Modified Op = iota
	// Added: the directive or block is only in the new version.
	Added
	// Removed: the directive or block is only in the old version.
	Removed
)

func (o Op) String() string {
	switch o {
	case Added:
		return "added"
	case Removed:
		return "removed"
	}
	return "changed"
}

// Change is one difference between two versions of the configuration, in
// PowerMTA's terms. Secrets are already masked in every string field (see
// IsSecret and MaskArgs): a Change can be printed, logged and stored.
type Change struct {
	Op Op
	// Block is the path of the block the directive is in, each level as
	// PowerMTA writes it: "<domain $gmail>", "<virtual-mta-pool pool-gmail>
	// <domain gmail.com>", "" at the top level. For a block added or
	// removed as a whole it is the path of that block itself.
	Block string
	// Directive is the directive's name in lower case, as PowerMTA matches
	// names; "" for a whole block.
	Directive string
	// Key tells apart the directives of one name that each set something
	// else (see keyed): the macro of a domain-macro, the address of an
	// http-access rule, the IP of an smtp-source-host; "order" when only
	// the order of http-access rules changed. Empty for other directives.
	Key string
	// Old and New are the values as written (quotes only where needed),
	// without the Key; Old is "" for an addition, New for a removal.
	Old, New string
	// Masked says that Old or New hides a secret.
	Masked bool
	// Pos is where the new version says it, or for a removal where the old
	// one said it.
	Pos Pos
}

// String is the change in one line: "<domain $gmail> max-msg-rate 250/h →
// 500/h", "virtual-mta vmta-gm-013 added" inside its pool's path,
// "<domain yahoo.com> added".
func (c Change) String() string {
	var b strings.Builder
	word := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	word(c.Block)
	word(c.Directive)
	word(c.Key)
	switch c.Op {
	case Added:
		word(c.New)
		word("added")
	case Removed:
		word(c.Old)
		word("removed")
	default:
		word(shown(c.Old) + " → " + shown(c.New))
	}
	return b.String()
}

// shown writes an empty value so that it can be seen.
func shown(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// Diff returns what changed from old to new, block by block, in the order
// the new version writes things (what only the old one has comes after
// what is in both):
//   - blocks are matched by name (without regard to case) and arguments
//     (as written: "<domain Gmail.com>" renamed to "<domain gmail.com>" is
//     one block removed and one added); one written twice at the
//     same level is one block, as PowerMTA merges them; a block only on one
//     side is one change, whatever it holds;
//   - directives are matched by name, without regard to case; a name
//     written once on each side is compared value to value, a repeated one
//     (virtual-mta in a pool, several http-api-key) as a set, so that
//     reordering is no change, and when exactly one value went and one came
//     the pair is shown as one change;
//   - values are compared as PowerMTA reads them: unquoted, whitespace
//     between words collapsed, comments gone; a boolean's yes, true and on
//     alike (and no, false, off), whatever their case; a domain-macro's
//     domains as a set (order, case and the comma-or-space separators do
//     not matter);
//   - http-access rules are matched top to bottom by PowerMTA, so their
//     order is compared too (Key "order").
//
// nil is an empty configuration.
func Diff(old, new *Block) []Change {
	var out []Change
	diffBlocks(&out, "", nonNil(old), nonNil(new))
	return out
}

func nonNil(b *Block) []*Block {
	if b == nil {
		return []*Block{{}}
	}
	return []*Block{b}
}

// diffBlocks compares the merged contents of the blocks olds and news,
// which share one path.
func diffBlocks(out *[]Change, path string, olds, news []*Block) {
	od, nd := directivesOf(olds), directivesOf(news)
	for _, name := range union(nd.order, od.order) {
		diffDirective(out, path, name, od.byName[name], nd.byName[name])
	}
	ok, nk := childrenOf(olds), childrenOf(news)
	for _, key := range union(nk.order, ok.order) {
		o, n := ok.byKey[key], nk.byKey[key]
		switch {
		case len(o) == 0:
			l, masked := label(n[0])
			*out = append(*out, Change{Op: Added, Block: join(path, l), Masked: masked, Pos: n[0].Pos})
		case len(n) == 0:
			l, masked := label(o[0])
			*out = append(*out, Change{Op: Removed, Block: join(path, l), Masked: masked, Pos: o[0].Pos})
		default:
			l, _ := label(n[0])
			diffBlocks(out, join(path, l), o, n)
		}
	}
}

func join(path, label string) string {
	if path == "" {
		return label
	}
	return path + " " + label
}

// label is how PowerMTA writes a block's opening line, secrets masked, and
// whether one was.
func label(b *Block) (string, bool) {
	args, masked := MaskArgs(b.Args)
	if len(args) == 0 {
		return "<" + b.Name + ">", false
	}
	return "<" + b.Name + " " + quoteArgs(args) + ">", masked
}

type directives struct {
	order  []string
	byName map[string][]Directive
}

func directivesOf(bs []*Block) directives {
	d := directives{byName: map[string][]Directive{}}
	for _, b := range bs {
		for _, dir := range b.Directives {
			name := strings.ToLower(dir.Name)
			if _, ok := d.byName[name]; !ok {
				d.order = append(d.order, name)
			}
			d.byName[name] = append(d.byName[name], dir)
		}
	}
	return d
}

type children struct {
	order []string
	byKey map[string][]*Block
}

func childrenOf(bs []*Block) children {
	c := children{byKey: map[string][]*Block{}}
	for _, b := range bs {
		for _, k := range b.Blocks {
			key := strings.ToLower(k.Name) + "\x00" + strings.Join(k.Args, "\x00")
			if _, ok := c.byKey[key]; !ok {
				c.order = append(c.order, key)
			}
			c.byKey[key] = append(c.byKey[key], k)
		}
	}
	return c
}

// union is a's elements, then those of b that a lacks, each once.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(a, s) {
			out = append(out, s)
		}
	}
	return out
}
