// Package zerofill fills the zero fields of a component's Config from its
// DefaultConfig, for a Config built in code (tests, other programs) rather
// than loaded: the defaults stay written once, in DefaultConfig, and each
// component only names the fields whose zero means "not given".
package zerofill

import (
	"fmt"
	"reflect"
)

// From sets each named field of *dst that holds its zero value to the value
// of that field in def. It panics on a name that is no field of T: a
// programming error the component's tests catch at once.
func From[T any](dst *T, def T, fields ...string) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(def)
	for _, name := range fields {
		f := d.FieldByName(name)
		if !f.IsValid() {
			panic(fmt.Sprintf("zerofill: %s has no field %s", d.Type(), name))
		}
		if f.IsZero() {
			f.Set(s.FieldByName(name))
		}
	}
}
