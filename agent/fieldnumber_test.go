package agent

import (
	"math"
	"testing"
)

func TestFieldNumber(t *testing.T) {
	tests := []struct {
		v    any
		want float64
		ok   bool
	}{
		{int64(42), 42, true},
		{int64(-7), -7, true},
		{int64(math.MaxInt64), math.MaxInt64, true},
		{12, 12, true},
		{0.25, 0.25, true},
		{true, 1, true},
		{false, 0, true},
		{"12", 0, false},
		{"", 0, false},
		{nil, 0, false},
		{int32(3), 0, false},
		{float32(1.5), 0, false},
		{uint64(3), 0, false},
	}
	for _, tt := range tests {
		got, ok := FieldNumber(tt.v)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FieldNumber(%#v) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}
