package impact

import (
	"os"
	"time"
)

// ModifiedSince returns the files last modified at or after t, in their
// order: PowerMTA appends each record when it logs it, so a file last
// written before t holds no record logged at t or later, and a comparison
// whose before window starts at t need not read it. A file that cannot be
// stat'ed is kept, so that reading it says why.
func ModifiedSince(files []string, t time.Time) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().Before(t) {
			continue
		}
		out = append(out, f)
	}
	return out
}
