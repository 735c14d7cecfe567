package stats

import (
	"math"
	"testing"
)

func TestPooledZ(t *testing.T) {
	// 60 of 3000 against 12 of 200: p = 72/3200.
	p := 72.0 / 3200
	want := (0.06 - 0.02) / math.Sqrt(p*(1-p)*(1.0/3000+1.0/200))
	if got := PooledZ(3000, 60, 200, 12); math.Abs(got-want) > 1e-12 {
		t.Errorf("PooledZ = %v, want %v", got, want)
	}
	if got := PooledZ(200, 12, 3000, 60); math.Abs(got+want) > 1e-12 {
		t.Errorf("swapped: %v, want %v", got, -want)
	}
	for _, c := range [][4]int64{{0, 0, 10, 5}, {10, 5, 0, 0}, {10, 0, 10, 0}, {10, 10, 10, 10}} {
		if got := PooledZ(c[0], c[1], c[2], c[3]); got != 0 {
			t.Errorf("PooledZ%v = %v, want 0", c, got)
		}
	}
}
