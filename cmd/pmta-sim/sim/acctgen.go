package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// GenerateOptions shape a generated file.
type GenerateOptions struct {
	// Records is how many records to write.
	Records int
	// Seed makes the file reproducible: the same options give the same file.
	Seed int64
	// Domains and VMTAs size the sender (defaults 40 and 24, at most 20,000
	// each); every vmta has its own source IP, and recipient domains past
	// the named providers are a long tail with Zipf weights.
	Domains, VMTAs int
	// Rate is records per second of log time (default 100), so that
	// Records/Rate seconds of log time are covered: a day of a sender
	// writing 30 records per second is Records 2,592,000 at Rate 30.
	Rate float64
}

// GenerateFile writes accounting records of every type to path, as fast as
// it can, for benchmarks of a reader: one file with the 33-column union
// header, CRLF line ends, timestamps from 2024-01-15 10:00:00-0500 on, Rate
// a second. An existing file at path is replaced.
func GenerateFile(path string, o GenerateOptions) error {
	if o.Rate <= 0 {
		o.Rate = 100
	}
	zone := time.FixedZone("", -5*3600)
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, zone)
	s := newSim(Options{Seed: o.Seed, Domains: o.Domains, VMTAs: o.VMTAs, Clock: func() time.Time { return base }}, maxGenerated)
	dist := s.acctDist(allAcctTypes)
	r := rand.New(rand.NewPCG(s.seed, 0x6e4))
	f, err := openAcctFile(path, header33, os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	rec := make([]string, nFields)
	step := float64(time.Second) / o.Rate
	for i := 0; i < o.Records; i++ {
		at := base.Add(time.Duration(float64(i) * step)).Truncate(time.Second)
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
