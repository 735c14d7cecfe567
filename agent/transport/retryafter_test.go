package transport

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	may := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	jan := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		now   time.Time
		limit time.Duration
		want  time.Duration
	}{
		{"", may, time.Hour, 0},
		{"0", may, time.Hour, 0},
		{"-5", may, time.Hour, 0},
		{"  12 ", may, time.Hour, 12 * time.Second},
		{"120", may, time.Hour, 2 * time.Minute},
		{"3600", may, time.Hour, time.Hour},
		{"3601", may, time.Hour, time.Hour},
		{"99999999999999999", may, time.Hour, time.Hour},
		{"999999999999999999", jan, time.Hour, time.Hour},
		{"Thu, 01 May 2025 12:00:00 GMT", may, time.Hour, time.Hour},
		{"Wed, 01 May 2024 12:01:30 GMT", may, time.Hour, 90 * time.Second},
		{"Wednesday, 01-May-24 12:00:10 GMT", may, time.Hour, 10 * time.Second}, // RFC 850
		{"Wed May  1 12:00:05 2024", may, time.Hour, 5 * time.Second},           // ANSI C
		{"Wed, 01 May 2024 11:59:00 GMT", may, time.Hour, 0},                    // past
		{"Wed, 01 May 2024 12:00:00 GMT", may, time.Hour, 0},                    // now
		{"soon", may, time.Hour, 0},
		{"1.5", may, time.Hour, 0},
		{"7", jan, time.Hour, 7 * time.Second},
		{"-3", jan, time.Hour, 0},
		{"Mon, 15 Jan 2024 12:01:00 GMT", jan, time.Hour, time.Minute},
		{"Mon, 15 Jan 2024 11:00:00 GMT", jan, time.Hour, 0},
		// Each caller's own cap, in both forms.
		{"299", may, 5 * time.Minute, 299 * time.Second},
		{"300", may, 5 * time.Minute, 5 * time.Minute},
		{"301", may, 5 * time.Minute, 5 * time.Minute},
		{"Wed, 01 May 2024 12:10:00 GMT", may, 5 * time.Minute, 5 * time.Minute},
		{"Wed, 01 May 2024 12:10:00 GMT", may, time.Hour, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.value, tt.now, tt.limit); got != tt.want {
			t.Errorf("ParseRetryAfter(%q, %s, limit %s) = %v, want %v",
				tt.value, tt.now.Format(time.RFC3339), tt.limit, got, tt.want)
		}
	}
}
