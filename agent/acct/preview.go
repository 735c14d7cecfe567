package acct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
)

// PreviewOptions configures Preview.
type PreviewOptions struct {
	// Config gives the globs and the aggregation, as for the tailer.
	Config Config
	// Window is how much of the newest data is shown: the closed intervals
	// that end within Window of the newest one (default 1 min).
	Window time.Duration
	// TailBytes is how much of each file's end is read (default 8 MiB):
	// a preview never reads a day's file whole.
	TailBytes int64
	// Now is the clock that says which intervals are closed (default
	// time.Now).
	Now func() time.Time
}

// PreviewResult is what a preview found.
type PreviewResult struct {
	// Files are the newest file of each kind the globs find (acct-…,
	// diag-…: the names without their digits), in name order.
	Files []string
	// Points are the pmta_acct* points of the intervals from From to To.
	Points []agent.Point
	// Records are the records in Points; From and To bound their
	// intervals (zero when there are none).
	Records  int64
	From, To time.Time
}

// Preview shows what the newest accounting files hold for their last
// intervals, the points the tailer makes of them, without its checkpoint or
// its lock: `pmta-agent once`. It reads the end of the newest file of each
// kind, and keeps the intervals that are complete in what it read — none
// up to the first whole interval of each file (the part not read, or the
// file before a rotation, holds its beginning), none still open (ending
// after now less the grace) — and within Window of the newest one. An
// unfinished last line is not counted. Files that cannot be read are in the error; the others are
// previewed.
func Preview(opts PreviewOptions, isp *agent.ISPMap) (PreviewResult, error) {
	cfg := opts.Config.withDefaults()
	window := cmpDuration(opts.Window, time.Minute)
	tail := opts.TailBytes
	if tail <= 0 {
		tail = 8 << 20
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	files, err := newestOfEachKind(cfg.Globs)
	res := PreviewResult{Files: files}
	errs := []error{err}
	agg := newAggregator(cfg.Interval, cfg.TopDiag, isp, cfg.Views...)
	agg.fillFrom(cfg.SourceIPs, cfg.Pools)
	// from: no interval before the first whole one of each file: the
	// part before the tail read, or a rotation, holds its beginning.
	newParser := func(agg *aggregator) *lineParser {
		return newLineParser(agg, cfg.MaxLineBytes, timeRange{now: now, skew: int64(cfg.MaxClockSkew / time.Second)},
			slog.New(slog.DiscardHandler), now)
	}
	p := newParser(agg)
	from := int64(minInt64)
	for _, name := range files {
		probe := newParser(newAggregator(cfg.Interval, 0, isp))
		start, err := previewFile(p, probe, name, tail)
		if err != nil {
			errs = append(errs, err)
		}
		if start != minInt64 {
			from = max(from, floorDiv(start, agg.iv)*agg.iv+agg.iv)
		}
	}
	if n := len(agg.open); n > 0 {
		// Closed: ending at or before now less the grace.
		last := min(agg.open[n-1].start, floorDiv(now().Add(-cfg.Grace).Unix(), agg.iv)*agg.iv-agg.iv)
		from = max(from, last+agg.iv-int64(window/time.Second))
		agg.closeEach(from, func([]agent.Point) {})
		agg.closeEach(last+agg.iv, func(pts []agent.Point) { res.Points = append(res.Points, pts...) })
		if len(res.Points) > 0 {
			res.From, res.To = time.Unix(from, 0).UTC(), time.Unix(last+agg.iv, 0).UTC()
		}
	}
	for i := range res.Points {
		if res.Points[i].Measurement == measAcct {
			if v, ok := res.Points[i].FieldValue("count"); ok {
				c, _ := v.(int64)
				res.Records += c
			}
		}
	}
	return res, errors.Join(errs...)
}

const minInt64 = -1 << 63

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// previewFile reads the header of name and then its last tail bytes with
// p. It returns when its first records were logged (minInt64 when it has
// none), which probe, a parser of its own, finds in the first records
// read: the interval that holds them may have begun before what was read.
func previewFile(p, probe *lineParser, name string, tail int64) (start int64, err error) {
	start = minInt64
	f, err := os.Open(name)
	if err != nil {
		return start, fmt.Errorf("preview: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return start, fmt.Errorf("preview: %w", err)
	}
	c := fileCursor{name: name}
	// The header line first (the records' columns).
	head := make([]byte, 64<<10)
	n, rerr := f.ReadAt(head, 0)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return start, fmt.Errorf("preview: read %s: %w", name, rerr)
	}
	nl := bytes.IndexByte(head[:n], '\n')
	if nl < 0 {
		return start, nil // no complete line yet
	}
	if _, _, err := p.read(f, &c, readSpan{toOffset: true, offset: int64(nl + 1), until: noUntil}); err != nil {
		return start, fmt.Errorf("preview: %w", err)
	}
	if from := fi.Size() - tail; from > c.offset {
		c.offset, c.skipping = from, true
	}
	// The probe reads 4 KiB (a few records), more until it has one.
	for size := int64(4 << 10); ; size *= 2 {
		pc := c
		end := min(pc.offset+size, fi.Size())
		if _, _, err := probe.read(f, &pc, readSpan{toOffset: true, offset: end, until: noUntil}); err != nil {
			return start, fmt.Errorf("preview: %w", err)
		}
		if pc.last != 0 || end == fi.Size() {
			if pc.last != 0 {
				start = pc.last
			}
			break
		}
	}
	// Not final: an unfinished last line is not a record yet.
	if _, _, err := p.read(f, &c, readSpan{until: noUntil}); err != nil {
		return start, fmt.Errorf("preview: %w", err)
	}
	return start, nil
}

// newestOfEachKind returns, of the regular files the globs find, the one
// modified last of each kind: its base name without digits (acct-.csv for
// acct-2024-01-15-0003.csv), so that the acct and diag files of one
// PowerMTA each have theirs.
func newestOfEachKind(globs []string) ([]string, error) {
	type newest struct {
		path string
		mod  time.Time
	}
	kinds := map[string]newest{}
	paths, err := GlobFiles(globs)
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		kind := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, filepath.Base(path))
		if n, ok := kinds[kind]; !ok || fi.ModTime().After(n.mod) || fi.ModTime().Equal(n.mod) && path > n.path {
			kinds[kind] = newest{path, fi.ModTime()}
		}
	}
	var out []string
	for _, n := range kinds {
		out = append(out, n.path)
	}
	slices.Sort(out)
	return out, err
}
