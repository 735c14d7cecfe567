package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// GenerateFile writes n accounting records of every type to path, as fast as
// it can, for benchmarks of a reader: one file with the 33-column union
// header, CRLF line ends, timestamps from 2024-01-15 10:00:00-0500 on, ten
// milliseconds apart (so a hundred share each second). The same seed gives
// the same file. An existing file at path is replaced.
func GenerateFile(path string, n int, seed int64) error {
	zone := time.FixedZone("", -5*3600)
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, zone)
	s := New(Options{Seed: seed, Clock: func() time.Time { return base }})
	dist := s.acctDist(allAcctTypes)
	r := rand.New(rand.NewPCG(s.seed, 0x6e4))
	f, err := openAcctFile(path, header33, os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	rec := make([]string, nFields)
	for i := 0; i < n; i++ {
		at := base.Add(time.Duration(i) * 10 * time.Millisecond).Truncate(time.Second)
		genRecord(r, dist, dist.types[pick(r, dist.typeCW)], at, rec)
		if err = f.write(rec); err != nil {
			break
		}
	}
	err = errors.Join(err, f.flush(), f.f.Close())
	if err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	return nil
}
