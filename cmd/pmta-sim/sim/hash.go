package sim

import (
	"cmp"
	"math"
	"slices"
)

// The model draws its "randomness" from hashes of (seed, entity, time) rather
// than from a stateful generator, so a value at time t does not depend on how
// often or in what order the model was read before t.

const golden = 0x9e3779b97f4a7c15

// mix is the splitmix64 finaliser: a cheap, well-distributed 64-bit hash.
func mix(x uint64) uint64 {
	x += golden
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash3 combines a seed and two coordinates into one hash.
func hash3(seed uint64, a, b uint64) uint64 {
	return mix(mix(seed^a*golden) ^ b)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 {
	return float64(h>>11) / (1 << 53)
}

// dither rounds x to an integer, up with probability frac(x), using u in [0,1),
// so that the expected value is x.
func dither(x, u float64) int64 {
	if x <= 0 {
		return 0
	}
	return int64(math.Floor(x + u))
}

// alloc splits total into len(w) integers proportional to the weights w by the
// largest-remainder method; the parts always sum to total exactly. Because it
// depends only on total and w, allocating a running total gives the same
// answer however the total was accumulated.
func alloc(total int64, w []float64, out []int64) {
	var sum float64
	for _, x := range w {
		sum += x
	}
	for i := range out {
		out[i] = 0
	}
	if total <= 0 || sum <= 0 {
		return
	}
	type rem struct {
		i int
		f float64
	}
	rems := make([]rem, 0, len(w))
	var given int64
	for i, x := range w {
		exact := float64(total) * x / sum
		fl := math.Floor(exact)
		out[i] = int64(fl)
		given += out[i]
		if x > 0 {
			rems = append(rems, rem{i, exact - fl})
		}
	}
	left := total - given
	if left <= 0 || len(rems) == 0 {
		return
	}
	slices.SortFunc(rems, func(a, b rem) int {
		if c := cmp.Compare(b.f, a.f); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	for k := int64(0); k < left; k++ {
		out[rems[k%int64(len(rems))].i]++
	}
}

// tenths converts an integer count of tenths of a kilobyte to kilobytes.
func tenths(v int64) float64 { return float64(v) / 10 }
