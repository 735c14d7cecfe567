// Command peerwatch runs one peer of the benchmark in ../../peers.sh, watches
// the file the peer writes, and stops the peer once that file holds the
// expected number of records:
//
//	peerwatch -out FILE -want N -format lines|otlpjson -- /usr/bin/time -v -o T peer args...
//
// It polls FILE every -poll (50ms) and counts records in the complete lines
// appended since the last poll: for -format lines (Telegraf's line protocol)
// one record per line that starts with "-measurement," (a string field that
// holds a line break, such as a multi-line dsnDiag, is written with the break
// as is, so a record can span lines); for -format otlpjson (the file
// exporter's JSON, one ExportLogsServiceRequest a line) one record per
// `"observedTimeUnixNano":` key, which every log record from the filelog
// receiver has. When the count reaches N it notes the time since it started
// the command (the reported wall: start to detection, nothing subtracted; its
// granularity is the poll interval plus the peer's own output flush
// interval), sends SIGTERM to the peer (the children of the command, which
// is /usr/bin/time, or the command itself when it has none), waits for it to
// exit, and then verifies the whole file: line protocol is decoded with
// github.com/influxdata/line-protocol/v2 and its points counted (each must
// be a -measurement point with fields and a timestamp); JSON lines are
// decoded with pdata's OTLP JSON unmarshaler and their log records counted.
// It prints one line:
//
//	detect=SECONDS exit=SECONDS seen=N records=M
//
// and exits 1 when records != N. It gives up (SIGTERM, exit 1) when the file
// has not grown for -stall (60s) or after -timeout (30m).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"go.opentelemetry.io/collector/pdata/plog"
)

func main() {
	out := flag.String("out", "", "file the peer writes")
	want := flag.Int64("want", 0, "records to wait for")
	format := flag.String("format", "lines", "lines (line protocol) or otlpjson (file exporter JSON)")
	measurement := flag.String("measurement", "pmta_acct", "measurement every line-protocol line must have")
	poll := flag.Duration("poll", 50*time.Millisecond, "poll interval")
	stall := flag.Duration("stall", 60*time.Second, "give up when the file has not grown for this long")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	if *out == "" || *want <= 0 || flag.NArg() == 0 || (*format != "lines" && *format != "otlpjson") {
		fmt.Fprintln(os.Stderr, "usage: peerwatch -out FILE -want N -format lines|otlpjson -- command args...")
		os.Exit(2)
	}
	count := func(complete []byte) int64 { // records in complete lines
		return int64(bytes.Count(complete, []byte(`"observedTimeUnixNano":`)))
	}
	if *format == "lines" {
		start := []byte(*measurement + ",")
		count = func(complete []byte) int64 {
			var n int64
			for len(complete) > 0 {
				if bytes.HasPrefix(complete, start) {
					n++
				}
				i := bytes.IndexByte(complete, '\n')
				complete = complete[i+1:]
			}
			return n
		}
	}

	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // stdout carries only the result line
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fail("start: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var (
		seen      int64
		off       int64
		partial   []byte
		lastGrow  = time.Now()
		detect    time.Duration
		buf       = make([]byte, 4<<20)
		giveUp    string
		childDone bool
	)
	tick := time.NewTicker(*poll)
	defer tick.Stop()
watch:
	for {
		select {
		case err := <-exited:
			childDone = true
			giveUp = fmt.Sprintf("peer exited before all records were seen (%v)", err)
			break watch
		case <-tick.C:
		}
		f, err := os.Open(*out)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			fail("open %s: %v", *out, err)
		}
		for {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				off += int64(n)
				lastGrow = time.Now()
				chunk := append(partial, buf[:n]...)
				nl := bytes.LastIndexByte(chunk, '\n')
				complete := chunk[:nl+1]
				seen += count(complete)
				partial = append(partial[:0:0], chunk[nl+1:]...)
			}
			if err == io.EOF || n == 0 {
				break
			}
			if err != nil {
				fail("read %s: %v", *out, err)
			}
		}
		f.Close()
		if seen >= *want {
			detect = time.Since(start)
			break
		}
		if time.Since(lastGrow) > *stall {
			giveUp = fmt.Sprintf("%s has not grown for %v", *out, *stall)
			break
		}
		if time.Since(start) > *timeout {
			giveUp = fmt.Sprintf("timed out after %v", *timeout)
			break
		}
	}
	if !childDone {
		stop(cmd.Process.Pid)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			fmt.Fprintln(os.Stderr, "peerwatch: peer did not exit within 60s of SIGTERM; killed")
		}
	}
	exit := time.Since(start)
	if giveUp != "" {
		fail("%s: %d of %d records seen after %.2fs", giveUp, seen, *want, exit.Seconds())
	}
	records, err := verify(*out, *format, *measurement)
	if err != nil {
		fail("verify: %v", err)
	}
	fmt.Printf("detect=%.2f exit=%.2f seen=%d records=%d\n", detect.Seconds(), exit.Seconds(), seen, records)
	if records != *want {
		fail("%s holds %d records, want %d", *out, records, *want)
	}
}

// stop sends SIGTERM to the children of pid (the peer under /usr/bin/time,
// which does not pass signals on), or to pid itself when it has none.
func stop(pid int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var kids []int
	for _, s := range strings.Fields(string(b)) {
		if k, err := strconv.Atoi(s); err == nil {
			kids = append(kids, k)
		}
	}
	if len(kids) == 0 {
		kids = []int{pid}
	}
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGTERM)
	}
}

// verify counts the records in the whole file, decoding all of it.
func verify(path, format, measurement string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	if format == "lines" {
		return verifyLineProtocol(r, measurement)
	}
	var n, lineNo int64
	var u plog.JSONUnmarshaler
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if line[len(line)-1] != '\n' {
				return n, fmt.Errorf("line %d is incomplete", lineNo)
			}
			logs, err := u.UnmarshalLogs(line)
			if err != nil {
				return n, fmt.Errorf("line %d: %v", lineNo, err)
			}
			n += int64(logs.LogRecordCount())
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func verifyLineProtocol(r io.Reader, measurement string) (int64, error) {
	var n int64
	dec := lineprotocol.NewDecoder(r)
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			return n, fmt.Errorf("point %d: %v", n+1, err)
		}
		if string(m) != measurement {
			return n, fmt.Errorf("point %d is a %q point", n+1, m)
		}
		for {
			k, _, err := dec.NextTag()
			if err != nil {
				return n, fmt.Errorf("point %d: %v", n+1, err)
			}
			if k == nil {
				break
			}
		}
		fields := 0
		for {
			k, _, err := dec.NextField()
			if err != nil {
				return n, fmt.Errorf("point %d: %v", n+1, err)
			}
			if k == nil {
				break
			}
			fields++
		}
		t, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			return n, fmt.Errorf("point %d: %v", n+1, err)
		}
		if fields == 0 || t.IsZero() {
			return n, fmt.Errorf("point %d has no fields or no timestamp", n+1)
		}
		n++
	}
	return n, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peerwatch: "+format+"\n", args...)
	os.Exit(1)
}
