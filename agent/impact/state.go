package impact

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pmta-agent/pmta-agent/agent/statefile"
)

// stateFile is what the Runner keeps on disk: the changes whose final
// report the sinks' queues hold, so that a restart makes it again only for
// a change whose window ended while the agent was down.
type stateFile struct {
	Finals []finalKey `json:"finals"`
}

// loadState reads the finals made; a missing or damaged file is none (the
// worst that follows is a final report made again, which overwrites the
// same points).
func (r *Runner) loadState() []finalKey {
	if r.cfg.StatePath == "" {
		return nil
	}
	b, err := os.ReadFile(r.cfg.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var st stateFile
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		r.log.Warn("cannot read which change impacts were measured; those whose window ended lately are measured again", "err", err)
		return nil
	}
	return st.Finals
}

// saveState writes the finals made, atomically; a failure is logged.
func (r *Runner) saveState() {
	if r.cfg.StatePath == "" {
		return
	}
	err := os.MkdirAll(filepath.Dir(r.cfg.StatePath), 0o700)
	if err == nil {
		b, _ := json.Marshal(stateFile{Finals: sortedKeys(r.done)}) // cannot fail: ints
		err = statefile.WriteAtomic(r.cfg.StatePath, append(b, '\n'), 0o600)
	}
	if err != nil {
		r.log.Warn("cannot record which change impacts were measured", "err", fmt.Errorf("impact state: %w", err))
	}
}
