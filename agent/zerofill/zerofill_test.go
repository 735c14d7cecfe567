package zerofill

import (
	"testing"
	"time"
)

func TestFrom(t *testing.T) {
	type cfg struct {
		Interval time.Duration
		Globs    []string
		MaxAge   time.Duration
		Name     string
	}
	def := cfg{Interval: 10 * time.Second, Globs: []string{"a"}, MaxAge: time.Hour, Name: "x"}
	c := cfg{Name: "given"}
	From(&c, def, "Interval", "Globs", "Name")
	if c.Interval != 10*time.Second || len(c.Globs) != 1 || c.Name != "given" || c.MaxAge != 0 {
		t.Errorf("filled %+v", c)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for an unknown field")
		}
	}()
	From(&c, def, "Nope")
}
