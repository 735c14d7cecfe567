package sim

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Step is one scenario of a schedule and when, after the start, it is
// applied.
type Step struct {
	Name string
	At   time.Duration
}

// Schedule is a list of steps in the order they are applied.
type Schedule []Step

// Has says whether the schedule applies scenario name.
func (sc Schedule) Has(name string) bool {
	return slices.ContainsFunc(sc, func(st Step) bool { return st.Name == name })
}

// ParseSchedule reads a list of scenarios, NAME or NAME@DURATION after the
// start, comma separated (pmta-sim -scenario, pmta-agent demo -scenario),
// into the order they are to be applied (those at one time in the order
// written). An empty list is no scenario.
func ParseSchedule(list string) (Schedule, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out Schedule
	for _, item := range strings.Split(list, ",") {
		name, at, timed := strings.Cut(strings.TrimSpace(item), "@")
		st := Step{Name: strings.ToLower(strings.TrimSpace(name))}
		if !slices.Contains(scenarioNames, st.Name) {
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want NAME or NAME@DURATION, NAME one of %s)", name, strings.Join(scenarioNames, ", "))
		}
		if timed {
			d, err := time.ParseDuration(strings.TrimSpace(at))
			if err != nil || d < 0 {
				return nil, fmt.Errorf("-scenario: %q: want a duration after the start such as 90s or 2m, not %q", item, at)
			}
			st.At = d
		}
		out = append(out, st)
	}
	slices.SortStableFunc(out, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	return out, nil
}

// RunSchedule applies the steps due at the start (At 0) now — an error
// there is returned, and nothing runs — and the later ones each at its time
// after start, in a goroutine, until ctx ends; a later step that fails is
// logged and the next ones still run. wait waits for the goroutine (which
// ends with ctx, or after the last step).
func (s *Sim) RunSchedule(ctx context.Context, start time.Time, steps Schedule, log *slog.Logger) (wait func() error, err error) {
	for len(steps) > 0 && steps[0].At == 0 {
		if err := s.applyStep(steps[0], log); err != nil {
			return nil, err
		}
		steps = steps[1:]
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, st := range steps {
			if wait := time.Until(start.Add(st.At)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if err := s.applyStep(st, log); err != nil {
				log.Error("scenario failed", "name", st.Name, "at", st.At, "err", err)
			}
		}
	}()
	return func() error { <-done; return nil }, nil
}

// applyStep applies one step and logs what it did.
func (s *Sim) applyStep(st Step, log *slog.Logger) error {
	what, err := s.ApplyScenario(st.Name)
	if err != nil {
		return err // its text starts with the scenario's name
	}
	log.Info("scenario applied", "name", st.Name, "at", st.At, "what", what)
	return nil
}
