package agent

// FieldNumber returns a field value as a float64, for code that compares or
// exports values whatever their Go type: int64, int and float64 as they are,
// a bool flag as 0 or 1. Strings, and anything else, are not numbers.
func FieldNumber(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case float64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
