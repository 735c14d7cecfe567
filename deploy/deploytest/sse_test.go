package deploytest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pmta-agent/pmta-agent/sinks/influx/influxtest"
)

// This file re-implements the part of Grafana's server-side expressions the
// rules in deploy/ use — reduce, math, threshold — over InfluxQL results, the
// way Grafana evaluates them: one item per series (labels = the series' tags),
// binary operations joined on equal labels or where one side's labels are a
// subset of the other's, items without a partner dropped.

// item is one labelled series; a reduced item (a number) has a single point
// with number set.
type item struct {
	labels map[string]string
	times  []int64
	values []float64
	number bool
}

// labelKey renders labels as "k=v,k=v" in key order.
func labelKey(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// seriesItems turns an InfluxQL result into items, one per series and value
// column, as Grafana's InfluxDB data source frames it. Nulls become NaN.
func seriesItems(series []influxtest.Series) ([]item, error) {
	var out []item
	for _, s := range series {
		for c := 1; c < len(s.Columns); c++ {
			it := item{labels: maps.Clone(s.Tags)}
			if it.labels == nil {
				it.labels = map[string]string{}
			}
			for _, row := range s.Values {
				if len(row) <= c {
					return nil, fmt.Errorf("series %s: short row %v", s.Name, row)
				}
				ts, err := toFloat(row[0])
				if err != nil {
					return nil, fmt.Errorf("series %s: time %v: %w", s.Name, row[0], err)
				}
				v, err := toFloat(row[c])
				if err != nil {
					return nil, fmt.Errorf("series %s column %s: %w", s.Name, s.Columns[c], err)
				}
				it.times = append(it.times, int64(ts))
				it.values = append(it.values, v)
			}
			out = append(out, it)
		}
	}
	return out, nil
}

func toFloat(v any) (float64, error) {
	switch v := v.(type) {
	case nil:
		return math.NaN(), nil
	case json.Number:
		return v.Float64()
	case float64:
		return v, nil
	case string:
		return 0, fmt.Errorf("string value %q where a number was expected", v)
	}
	return 0, fmt.Errorf("unexpected value %T %v", v, v)
}

// hasData reports whether any item holds a finite value.
func hasData(items []item) bool {
	for _, it := range items {
		for _, v := range it.values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true
			}
		}
	}
	return false
}

// reduce implements the reduce expression: each series becomes one number.
// Mode "dropNN" drops NaN values first; otherwise (strict) a NaN poisons the
// result, as in Grafana.
func reduce(in []item, reducer, mode string) ([]item, error) {
	var out []item
	for _, it := range in {
		vals := it.values
		if mode == "dropNN" {
			vals = slices.DeleteFunc(slices.Clone(vals), math.IsNaN)
		}
		var r float64
		switch reducer {
		case "last":
			r = math.NaN()
			if len(vals) > 0 {
				r = vals[len(vals)-1]
			}
		case "sum", "mean":
			for _, v := range vals {
				r += v
			}
			if reducer == "mean" {
				r = r / float64(len(vals))
			}
		case "min", "max":
			r = math.NaN()
			for i, v := range vals {
				if i == 0 || (reducer == "min" && v < r) || (reducer == "max" && v > r) {
					r = v
				}
			}
		case "count":
			r = float64(len(vals))
		default:
			return nil, fmt.Errorf("reducer %q is not one this test knows", reducer)
		}
		if mode == "dropNN" && math.IsNaN(r) {
			continue
		}
		out = append(out, item{labels: it.labels, times: []int64{0}, values: []float64{r}, number: true})
	}
	return out, nil
}

// threshold implements the threshold expression: 1 where the condition holds.
func threshold(in []item, evalType string, params []float64) ([]item, error) {
	test := func(v float64) (bool, error) {
		switch {
		case evalType == "gt" && len(params) == 1:
			return v > params[0], nil
		case evalType == "lt" && len(params) == 1:
			return v < params[0], nil
		case evalType == "within_range" && len(params) == 2:
			return v > params[0] && v < params[1], nil
		case evalType == "outside_range" && len(params) == 2:
			return v < params[0] || v > params[1], nil
		}
		return false, fmt.Errorf("threshold %s %v is not one this test knows", evalType, params)
	}
	var out []item
	for _, it := range in {
		o := item{labels: it.labels, times: it.times, number: it.number}
		for _, v := range it.values {
			ok, err := test(v)
			if err != nil {
				return nil, err
			}
			o.values = append(o.values, b2f(ok))
		}
		out = append(out, o)
	}
	return out, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ------------------------------------------------------------------ math

// mathNode is a parsed math expression.
type mathNode interface {
	eval(vars map[string][]item) ([]item, error)
}

type numNode float64
type varNode string
type unaryNode struct {
	op string
	x  mathNode
}
type binNode struct {
	op   string
	l, r mathNode
}

func (n numNode) eval(map[string][]item) ([]item, error) {
	return []item{{labels: map[string]string{}, times: []int64{0}, values: []float64{float64(n)}, number: true}}, nil
}

func (n varNode) eval(vars map[string][]item) ([]item, error) {
	v, ok := vars[string(n)]
	if !ok {
		return nil, fmt.Errorf("math refers to $%s, which is not defined before it", string(n))
	}
	return v, nil
}

func (n unaryNode) eval(vars map[string][]item) ([]item, error) {
	x, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	out := make([]item, len(x))
	for i, it := range x {
		o := item{labels: it.labels, times: it.times, number: it.number, values: make([]float64, len(it.values))}
		for j, v := range it.values {
			if n.op == "-" {
				o.values[j] = -v
			} else {
				o.values[j] = b2f(v == 0)
			}
		}
		out[i] = o
	}
	return out, nil
}

func (n binNode) eval(vars map[string][]item) ([]item, error) {
	l, err := n.l.eval(vars)
	if err != nil {
		return nil, err
	}
	r, err := n.r.eval(vars)
	if err != nil {
		return nil, err
	}
	var out []item
	for _, a := range l {
		for _, b := range r {
			if !joinable(a, b, len(l) == 1 && len(r) == 1) {
				continue
			}
			out = append(out, combine(n.op, a, b))
		}
	}
	return out, nil
}

// joinable says whether Grafana pairs two items: equal labels, one side's
// labels a subset of the other's, or a single item on each side.
func joinable(a, b item, single bool) bool {
	return single || subset(a.labels, b.labels) || subset(b.labels, a.labels)
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if bv, ok := big[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// combine applies op pointwise: a number applies to every point of a series;
// two series are joined on equal timestamps.
func combine(op string, a, b item) item {
	labels := a.labels
	if len(b.labels) > len(a.labels) {
		labels = b.labels
	}
	o := item{labels: labels}
	switch {
	case a.number && b.number:
		o.number, o.times, o.values = true, []int64{0}, []float64{apply(op, a.values[0], b.values[0])}
	case b.number:
		o.times = a.times
		for _, v := range a.values {
			o.values = append(o.values, apply(op, v, b.values[0]))
		}
	case a.number:
		o.times = b.times
		for _, v := range b.values {
			o.values = append(o.values, apply(op, a.values[0], v))
		}
	default:
		at := map[int64]float64{}
		for i, t := range a.times {
			at[t] = a.values[i]
		}
		for i, t := range b.times {
			if av, ok := at[t]; ok {
				o.times = append(o.times, t)
				o.values = append(o.values, apply(op, av, b.values[i]))
			}
		}
	}
	return o
}

func apply(op string, x, y float64) float64 {
	switch op {
	case "+":
		return x + y
	case "-":
		return x - y
	case "*":
		return x * y
	case "/":
		return x / y
	case "%":
		return math.Mod(x, y)
	case ">":
		return b2f(x > y)
	case "<":
		return b2f(x < y)
	case ">=":
		return b2f(x >= y)
	case "<=":
		return b2f(x <= y)
	case "==":
		return b2f(x == y)
	case "!=":
		return b2f(x != y)
	case "&&":
		return b2f(x != 0 && y != 0)
	case "||":
		return b2f(x != 0 || y != 0)
	}
	return math.NaN()
}

// precedence of binary operators, lowest first, as in Grafana's math
// (which follows Go's).
var precedence = map[string]int{
	"||": 1, "&&": 2,
	"==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
	"+": 4, "-": 4,
	"*": 5, "/": 5, "%": 5,
}

// parseMath parses a math expression: $A or ${A} references, numbers,
// + - * / %, comparisons, && ||, unary - and !, parentheses.
func parseMath(src string) (mathNode, error) {
	toks, err := lexMath(src)
	if err != nil {
		return nil, err
	}
	p := &mathParser{toks: toks}
	n, err := p.binary(1)
	if err != nil {
		return nil, fmt.Errorf("math %q: %w", src, err)
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("math %q: unexpected %q", src, p.toks[p.pos])
	}
	return n, nil
}

type mathParser struct {
	toks []string
	pos  int
}

func (p *mathParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *mathParser) binary(minPrec int) (mathNode, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		prec, ok := precedence[op]
		if !ok || prec < minPrec {
			return l, nil
		}
		p.pos++
		r, err := p.binary(prec + 1)
		if err != nil {
			return nil, err
		}
		l = binNode{op: op, l: l, r: r}
	}
}

func (p *mathParser) unary() (mathNode, error) {
	tok := p.peek()
	p.pos++
	switch {
	case tok == "":
		return nil, fmt.Errorf("unexpected end")
	case tok == "-" || tok == "!":
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return unaryNode{op: tok, x: x}, nil
	case tok == "(":
		n, err := p.binary(1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return n, nil
	case strings.HasPrefix(tok, "$"):
		return varNode(tok[1:]), nil
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return nil, fmt.Errorf("unexpected %q", tok)
	}
	return numNode(f), nil
}

func lexMath(src string) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := rune(src[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '$':
			j := i + 1
			if j < len(src) && src[j] == '{' {
				end := strings.IndexByte(src[j:], '}')
				if end < 0 {
					return nil, fmt.Errorf("math %q: unclosed ${", src)
				}
				toks = append(toks, "$"+src[j+1:j+end])
				i = j + end + 1
				continue
			}
			for j < len(src) && (unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j])) || src[j] == '_') {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("math %q: $ without a name", src)
			}
			toks = append(toks, src[i:j])
			i = j
		case unicode.IsDigit(c) || c == '.':
			j := i
			for j < len(src) && (unicode.IsDigit(rune(src[j])) || src[j] == '.' || src[j] == 'e' || src[j] == 'E') {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "&&", "||", ">=", "<=", "==", "!=":
				toks = append(toks, two)
				i += 2
				continue
			}
			if !strings.ContainsRune("+-*/%<>()!", c) {
				return nil, fmt.Errorf("math %q: unexpected %q", src, c)
			}
			toks = append(toks, string(c))
			i++
		}
	}
	return toks, nil
}
