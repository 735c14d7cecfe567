// Package stats holds the statistics the agent's verdicts rest on, once.
package stats

import "math"

// PooledZ is the pooled two-proportion z of x2/n2 against x1/n1:
//
//	(x₂/n₂ − x₁/n₁) / √(p(1−p)(1/n₁ + 1/n₂)),  p = (x₁+x₂)/(n₁+n₂)
//
// positive when the second rate is the higher; 0 when a side has no
// trials or the pooled rate is 0 or 1 (no spread to measure against).
func PooledZ(n1, x1, n2, x2 int64) float64 {
	if n1 <= 0 || n2 <= 0 {
		return 0
	}
	p := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0
	}
	return (float64(x2)/float64(n2) - float64(x1)/float64(n1)) / se
}
