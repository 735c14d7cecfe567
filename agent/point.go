package agent

import (
	"slices"
	"strings"
	"time"
)

// Tag is one indexed key/value pair of a point.
type Tag struct {
	Key, Value string
}

// Field is one value of a point. Value holds an int64, a float64, a bool or a
// string; anything else is a programming error and is encoded as a string.
type Field struct {
	Key   string
	Value any
}

// Point is one sample: a measurement name, a tag set, a field set and a time.
// Tags are kept sorted by key so that equal tag sets compare and encode equally.
type Point struct {
	Measurement string
	Tags        []Tag
	Fields      []Field
	Time        time.Time
}

// NewPoint returns a point with the given tags (in any order; they are sorted)
// and fields.
func NewPoint(measurement string, tags []Tag, fields []Field, t time.Time) Point {
	p := Point{Measurement: measurement, Tags: tags, Fields: fields, Time: t}
	p.SortTags()
	return p
}

// SortTags puts the tags in key order, as NewPoint does; a point built by
// hand needs it before TagValue's neighbours (SetTag) can find their place.
func (p *Point) SortTags() {
	if !slices.IsSortedFunc(p.Tags, CompareTags) {
		slices.SortFunc(p.Tags, CompareTags)
	}
}

// CompareTags orders tags by key.
func CompareTags(a, b Tag) int { return strings.Compare(a.Key, b.Key) }

// TagValue returns the value of the tag key and whether the point has it.
func (p *Point) TagValue(key string) (string, bool) {
	for _, t := range p.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// SetTag sets (or replaces) the tag key, keeping the tags sorted.
func (p *Point) SetTag(key, value string) {
	i, found := slices.BinarySearchFunc(p.Tags, key, func(t Tag, k string) int { return strings.Compare(t.Key, k) })
	if found {
		p.Tags[i].Value = value
		return
	}
	p.Tags = slices.Insert(p.Tags, i, Tag{Key: key, Value: value})
}

// FieldValue returns the value of the field key and whether the point has it.
func (p *Point) FieldValue(key string) (any, bool) {
	for _, f := range p.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// Clone returns a deep copy of the point whose tag and field slices can be
// changed without touching the original.
func (p Point) Clone() Point {
	p.Tags = slices.Clone(p.Tags)
	p.Fields = slices.Clone(p.Fields)
	return p
}

// Batch is the unit that sources hand to the pipeline: the points of one
// collection round (one poll, one accounting interval).
type Batch struct {
	// Source names the producer, for logs and self-metrics.
	Source string
	Points []Point
	// Done, when not nil, is called once, after every sink has taken the
	// points into its queue. Sources that must not advance a position before
	// their data is safe (the accounting tailer's checkpoint) commit in Done.
	// The pipeline calls it at most once and never for a batch it dropped.
	Done func()
}
