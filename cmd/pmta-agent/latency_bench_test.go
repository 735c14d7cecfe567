package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTailLatencyBenchmark measures (it asserts no speed) how long after
// PowerMTA appends a record to the live accounting file that record is in a
// point the agent emitted, with the default acct settings: records are
// appended just after an interval starts (the worst case) and at random
// moments. PMTA_BENCH_LATENCY=1 go test -run TailLatency -v ./cmd/pmta-agent
func TestTailLatencyBenchmark(t *testing.T) {
	if os.Getenv("PMTA_BENCH_LATENCY") == "" {
		t.Skip("benchmark: set PMTA_BENCH_LATENCY=1 to run")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "acct-2026-11-28-0000.csv")
	header := "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool\r\n"
	writeTestFile(t, path, header)

	cfg := e2eConfig(t, "http://127.0.0.1:1", "pmta", "json", "http://127.0.0.1:1", "x")
	cfg.API.Enabled = false
	cfg.Sinks.Influx.Enabled = false
	cfg.Sinks.Stdout.Enabled = true
	cfg.Acct.Enabled = true
	cfg.Acct.StartAt = "beginning"
	cfg.Acct.Globs = []string{filepath.Join(dir, "*.csv")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, &out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() { cancel(); <-done }()

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	iv := cfg.Acct.Interval
	var worst, random []time.Duration
	for i := range 12 {
		// Even samples: right after an interval starts; odd: anywhere.
		now := time.Now()
		next := now.Truncate(iv).Add(iv)
		wait := time.Until(next) + 50*time.Millisecond
		if i%2 == 1 {
			wait = time.Duration(i*700) * time.Millisecond % iv
		}
		time.Sleep(wait)
		at := time.Now()
		vmta := fmt.Sprintf("lat-%d", i)
		line := fmt.Sprintf("d,%s,%s,o@x.example,r@gmail.com,,relayed,2.0.0 (success),smtp;250 ok,mx (1.2.3.4),success,smtp,,smtp,203.0.113.1,1.2.3.4,,1000,%s,,,gmail.com/%s,pool\r\n",
			at.Format("2006-01-02 15:04:05-0700"), at.Format("2006-01-02 15:04:05-0700"), vmta, vmta)
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(out.String(), "vmta="+vmta+" ") {
			if time.Since(at) > 3*iv {
				t.Fatalf("record %d not emitted after %s", i, time.Since(at))
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat := time.Since(at)
		if i%2 == 0 {
			worst = append(worst, lat)
		} else {
			random = append(random, lat)
		}
	}
	slices.Sort(worst)
	slices.Sort(random)
	t.Logf("tail latency with interval %s, grace %s, poll_every %s: appended at an interval start: max %s; at random moments: median %s, max %s (target: interval + 1s = %s)",
		iv, cfg.Acct.Grace, cfg.Acct.PollEvery, worst[len(worst)-1].Round(time.Millisecond),
		random[len(random)/2].Round(time.Millisecond), random[len(random)-1].Round(time.Millisecond), iv+time.Second)
}
