package sim

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// AcctOptions configures an AcctWriter like an <acct-file> block.
type AcctOptions struct {
	Dir       string         // where files are written (created if missing)
	MoveTo    string         // optional: finished files are renamed into it
	MaxSize   int64          // start a new file once this size is reached (default 50 MiB)
	Types     string         // record types, default "d,b,t,tq,r,f,rb,rs"
	SplitDiag bool           // t and tq go to diag-*.csv, as the stock config does
	LocalZone *time.Location // zone of timestamps and of the midnight rotation (default time.Local)
}

// AcctKey identifies a count of written records. Domain is the recipient's
// (for tq the queue's); VMTA is empty for rb and rs, which carry none.
type AcctKey struct {
	Type, Domain, VMTA string
}

// AcctWriter writes accounting files for a Sim, rotating them the way
// PowerMTA does: at local midnight, on reaching MaxSize and on Rotate.
type AcctWriter struct {
	mu     sync.Mutex
	s      *Sim
	o      AcctOptions
	types  []string
	rng    *rand.Rand
	files  map[string]*acctFile // "acct", "diag"
	last   map[string]fileID    // last file opened per kind, for numbering
	counts map[AcctKey]int64
	rec    []string
	closed bool
}

type fileID struct {
	date string
	seq  int
}

// acctFile is one open CSV file.
type acctFile struct {
	id     fileID
	path   string
	f      *os.File
	bw     *bufio.Writer
	cw     *csv.Writer
	size   int64
	header []string
}

// countWriter counts bytes on their way to the buffer.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// parseTypes validates a records list.
func parseTypes(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return slices.Clone(allAcctTypes), nil
	}
	var out []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(allAcctTypes, t) {
			return nil, fmt.Errorf("unknown record type %q (want d,b,t,tq,r,f,rb,rs)", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// NewAcctWriter prepares a writer; files are created on the first Write.
func (s *Sim) NewAcctWriter(o AcctOptions) (*AcctWriter, error) {
	if o.Dir == "" {
		return nil, errors.New("acct writer: Dir is required")
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 50 << 20
	}
	if o.LocalZone == nil {
		o.LocalZone = time.Local
	}
	types, err := parseTypes(o.Types)
	if err != nil {
		return nil, fmt.Errorf("acct writer: %w", err)
	}
	for _, d := range []string{o.Dir, o.MoveTo} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("acct writer: %w", err)
		}
	}
	s.mu.Lock()
	s.writers++
	seq := s.writers
	s.mu.Unlock()
	return &AcctWriter{
		s: s, o: o, types: types,
		rng:    rand.New(rand.NewPCG(s.seed, 0xacc7+seq)),
		files:  map[string]*acctFile{},
		last:   map[string]fileID{},
		counts: map[AcctKey]int64{},
		rec:    make([]string, nFields),
	}, nil
}

// kindOf says which file a record type goes to.
func (w *AcctWriter) kindOf(typ string) string {
	if w.o.SplitDiag && (typ == "t" || typ == "tq") {
		return "diag"
	}
	return "acct"
}

// headerFor is the 23-column default header when a file holds only d and b
// records, the 33-column union header otherwise.
func headerFor(types []string) []string {
	for _, t := range types {
		if t != "d" && t != "b" {
			return header33
		}
	}
	return header23
}

// Write logs n records at time at, in the model's current traffic mix (its
// queues, pauses and deferral rates), and adds them to the model's counters:
// d to traffic out and delivered, t to deferred, b to bounced, r to traffic
// in, f to feedbackLoopProcessed, rb and rs to bounceProcessed. The counters
// take them at the model's current second, whatever at is; tq records count
// toward nothing, as they carry no recipient.
func (w *AcctWriter) Write(n int, at time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("acct writer: closed")
	}
	w.s.mu.Lock()
	dist := w.s.acctDist(w.types)
	w.s.mu.Unlock()
	eff := newAcctEffect(len(dist.queues))
	at = at.In(w.o.LocalZone).Truncate(time.Second)
	var err error
	for i := 0; i < n && err == nil; i++ {
		typ := dist.types[pick(w.rng, dist.typeCW)]
		ri := genRecord(w.rng, dist, typ, at, w.rec)
		var f *acctFile
		if f, err = w.fileFor(w.kindOf(typ), at); err == nil {
			err = f.write(w.rec)
		}
		if err == nil { // only records that reached a file count
			w.counts[ri.key]++
			eff.add(ri)
		}
	}
	for _, f := range w.files {
		if ferr := f.flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	w.s.applyAcct(eff)
	if err != nil {
		return fmt.Errorf("acct writer: %w", err)
	}
	return nil
}

// fileFor returns the open file of kind for a record at at, rotating at local
// midnight and at MaxSize.
func (w *AcctWriter) fileFor(kind string, at time.Time) (*acctFile, error) {
	date := at.Format("2006-01-02")
	f := w.files[kind]
	if f != nil && (f.id.date != date || f.size >= w.o.MaxSize) {
		if err := w.finish(kind); err != nil {
			return nil, err
		}
		f = nil
	}
	if f != nil {
		return f, nil
	}
	id := fileID{date: date}
	if prev, ok := w.last[kind]; ok && prev.date == date {
		id.seq = prev.seq + 1
	}
	for ; ; id.seq++ {
		name := fmt.Sprintf("%s-%s-%04d.csv", kind, id.date, id.seq)
		if !w.exists(name) {
			var types []string
			for _, t := range w.types {
				if w.kindOf(t) == kind {
					types = append(types, t)
				}
			}
			nf, err := openAcctFile(filepath.Join(w.o.Dir, name), headerFor(types), os.O_EXCL)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			nf.id = id
			w.files[kind], w.last[kind] = nf, id
			return nf, nil
		}
	}
}

// exists reports whether name is taken in Dir or MoveTo; PowerMTA never
// overwrites a file, it takes the next number.
func (w *AcctWriter) exists(name string) bool {
	for _, d := range []string{w.o.Dir, w.o.MoveTo} {
		if d == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

// openAcctFile creates path and writes the header; flag adds os.O_EXCL or
// os.O_TRUNC.
func openAcctFile(path string, header []string, flag int) (*acctFile, error) {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := &acctFile{path: path, f: fh, header: header}
	f.bw = bufio.NewWriterSize(fh, 256<<10)
	f.cw = csv.NewWriter(countWriter{f.bw, &f.size})
	f.cw.UseCRLF = true
	if err := f.cw.Write(header); err != nil {
		fh.Close()
		return nil, fmt.Errorf("write header %s: %w", path, err)
	}
	f.cw.Flush()
	return f, f.cw.Error()
}

// write appends one record, cut to the file's header.
func (f *acctFile) write(rec []string) error {
	if err := f.cw.Write(rec[:len(f.header)]); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	f.cw.Flush() // into the bufio.Writer, so size is exact
	return f.cw.Error()
}

// flush pushes buffered records to the file so a tailer sees whole lines.
func (f *acctFile) flush() error {
	if err := f.bw.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", f.path, err)
	}
	return nil
}

// finish closes the open file of kind and moves it to MoveTo.
func (w *AcctWriter) finish(kind string) error {
	f := w.files[kind]
	if f == nil {
		return nil
	}
	delete(w.files, kind)
	err := f.flush()
	if cerr := f.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", f.path, cerr)
	}
	if err != nil {
		return err
	}
	if w.o.MoveTo != "" {
		dst := filepath.Join(w.o.MoveTo, filepath.Base(f.path))
		if err := os.Rename(f.path, dst); err != nil {
			return fmt.Errorf("move %s: %w", f.path, err)
		}
	}
	return nil
}

// WriteRaw appends line as it is — a damaged or hand-made record, its line
// end included — to the file of kind ("acct" or "diag") that a record logged
// at at would go to. It exists for tests of hostile input; Counts does not
// count it.
func (w *AcctWriter) WriteRaw(kind string, at time.Time, line []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("acct writer: closed")
	}
	if kind != "acct" && kind != "diag" {
		return fmt.Errorf("acct writer: kind %q is neither acct nor diag", kind)
	}
	f, err := w.fileFor(kind, at.In(w.o.LocalZone))
	if err != nil {
		return fmt.Errorf("acct writer: %w", err)
	}
	if _, err := (countWriter{f.bw, &f.size}).Write(line); err != nil {
		return fmt.Errorf("acct writer: %w", err)
	}
	return f.flush()
}

// Header returns the columns of the files of kind ("acct" or "diag").
func (w *AcctWriter) Header(kind string) []string {
	var types []string
	for _, t := range w.types {
		if w.kindOf(t) == kind {
			types = append(types, t)
		}
	}
	return slices.Clone(headerFor(types))
}

// Rotate finishes the open files, like `pmta rotate acct`; the next Write
// starts new ones with the next number.
func (w *AcctWriter) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.finish("acct"), w.finish("diag"))
}

// Counts returns how many records of each key were written so far.
func (w *AcctWriter) Counts() map[AcctKey]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[AcctKey]int64, len(w.counts))
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

// Close finishes the open files (moving them when MoveTo is set).
func (w *AcctWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return errors.Join(w.finish("acct"), w.finish("diag"))
}
