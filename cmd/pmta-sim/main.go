// Command pmta-sim runs a simulated PowerMTA: the web monitor's HTTP API in
// both dialects (pmta and seed) and, optionally, accounting CSV files, for
// demos, end-to-end tests and benchmarks of pmta-agent.
//
//	pmta-sim -listen 127.0.0.1:8080 -api-key secret -acct-dir /tmp/pmta-acct
//	pmta-sim -acct-generate 1000000 -acct-out /tmp/acct-bench.csv
//
// With -config-out it also writes a PowerMTA configuration file describing
// the model (ports, accounting files, vmtas, pools, domain macros), and with
// -scenario it drives named situations on a schedule, for the agent's
// IP-versus-pool verdicts and its config-change impact report:
//
//	pmta-sim -acct-dir /tmp/pmta-acct -acct-rate 200 -config-out /tmp/pmta/config \
//	    -scenario 'ip-reputation,pool-throttle,config-fix@2m,config-noop@4m'
//
// Exit status: 0 after a clean stop, 1 when something failed, 2 for a bad
// command line.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pmta-agent/pmta-agent/cmd/pmta-sim/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pmta-sim:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

type config struct {
	listen, apiKey, hostname       string
	seed                           int64
	rate                           float64
	domains, vmtas                 int
	tls                            bool
	tlsCertOut                     string
	delay                          time.Duration
	errorRate, garbageRate         float64
	restartEvery                   time.Duration
	acctDir, acctMoveTo, acctTypes string
	acctRate                       float64
	acctMaxSize                    int64
	acctSplitDiag                  bool
	acctGenerate                   int
	acctOut                        string
	configOut                      string
	scenarios                      sim.Schedule
}

// parseFlags reads the command line; every error but -h is a usageError.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	c, err := parseArgs(args, stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		err = usageError{err}
	}
	return c, err
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var scenarios string
	fs := flag.NewFlagSet("pmta-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve the API on")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the model")
	fs.Float64Var(&c.rate, "rate", 50, "delivered recipients per second of the model's own traffic; accounting records add to it (negative: none, so only -acct-dir records move the counters)")
	fs.IntVar(&c.domains, "domains", 40, "recipient domains (at most 400 when serving, 20000 with -acct-generate)")
	fs.IntVar(&c.vmtas, "vmtas", 24, "VirtualMTAs, each with its own source IP (at most 400 when serving, 20000 with -acct-generate)")
	fs.StringVar(&c.hostname, "hostname", "mta01.sim.example", "fullHostName reported by /status")
	fs.StringVar(&c.apiKey, "api-key", os.Getenv("PMTA_SIM_API_KEY"), "required X-API-Key (default $PMTA_SIM_API_KEY; empty: no check)")
	fs.BoolVar(&c.tls, "tls", false, "serve HTTPS with a freshly generated self-signed certificate")
	fs.StringVar(&c.tlsCertOut, "tls-cert-out", "", "write the certificate's PEM here (default: a temporary file, path printed)")
	fs.DurationVar(&c.delay, "delay", 0, "delay before every response")
	fs.Float64Var(&c.errorRate, "error-rate", 0, "fraction of requests answered 500")
	fs.Float64Var(&c.garbageRate, "garbage-rate", 0, "fraction of responses with a garbage body")
	fs.DurationVar(&c.restartEvery, "restart-every", 0, "simulate a PowerMTA restart (counters to zero) this often")
	fs.StringVar(&c.acctDir, "acct-dir", "", "write accounting files into this directory")
	fs.Float64Var(&c.acctRate, "acct-rate", 100, "accounting records per second (of log time, with -acct-generate)")
	fs.StringVar(&c.acctMoveTo, "acct-move-to", "", "move finished accounting files here")
	fs.Int64Var(&c.acctMaxSize, "acct-max-size", 50<<20, "rotate accounting files at this size in bytes")
	fs.StringVar(&c.acctTypes, "acct-types", "d,b,t,tq,r,f,rb,rs", "record types to write")
	fs.BoolVar(&c.acctSplitDiag, "acct-split-diag", false, "write t and tq records to diag-*.csv")
	fs.IntVar(&c.acctGenerate, "acct-generate", 0, "write this many records to -acct-out as fast as possible and exit")
	fs.StringVar(&c.acctOut, "acct-out", "", "file for -acct-generate")
	fs.StringVar(&c.configOut, "config-out", "", "write a PowerMTA config file describing the model here (http-mgmt-port from -listen, <acct-file> in -acct-dir)")
	fs.StringVar(&scenarios, "scenario", "", "scenarios to apply, comma-separated, each NAME or NAME@DURATION after the start, e.g. 'ip-reputation,pool-throttle,config-fix@2m,config-noop@4m'; names: "+
		strings.Join(sim.ScenarioNames(), ", ")+" (config-fix and config-noop rewrite the -config-out file)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.acctGenerate > 0 && c.acctOut == "" {
		return c, errors.New("-acct-generate needs -acct-out FILE")
	}
	var err error
	if c.scenarios, err = sim.ParseSchedule(scenarios); err != nil {
		return c, err
	}
	if c.acctGenerate > 0 && (c.configOut != "" || len(c.scenarios) > 0) {
		return c, errors.New("-acct-generate writes a file and exits: -config-out and -scenario need the running simulator")
	}
	for _, st := range c.scenarios {
		if sim.IsConfigScenario(st.Name) && c.configOut == "" {
			return c, fmt.Errorf("-scenario %s rewrites the PowerMTA config: it needs -config-out FILE", st.Name)
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.acctGenerate > 0 {
		start := time.Now()
		if err := sim.GenerateFile(c.acctOut, sim.GenerateOptions{
			Records: c.acctGenerate, Seed: c.seed, Domains: c.domains, VMTAs: c.vmtas, Rate: c.acctRate}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d records to %s in %s\n", c.acctGenerate, c.acctOut, time.Since(start).Round(time.Millisecond))
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s := sim.New(sim.Options{Seed: c.seed, Rate: c.rate, Domains: c.domains, VMTAs: c.vmtas,
		APIKey: c.apiKey, Hostname: c.hostname, Logger: log})
	s.SetFaults(sim.Faults{Delay: c.delay, ErrorRate: c.errorRate, GarbageRate: c.garbageRate})

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if c.tls {
		path, err := setupTLS(srv, c, ln.Addr())
		if err != nil {
			ln.Close()
			return err
		}
		scheme = "https"
		fmt.Fprintf(stdout, "certificate: %s\n", path)
	}
	start := time.Now()
	if c.configOut != "" {
		if err := writeConfig(s, c, ln.Addr()); err != nil {
			ln.Close()
			return err
		}
		fmt.Fprintf(stdout, "PowerMTA config: %s\n", c.configOut)
	}
	// What is due at the start is in place before the first request.
	waitSchedule, err := s.RunSchedule(ctx, start, c.scenarios, log)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stdout, "pmta-sim listening on %s://%s (pmta: /status /queues /domains /vmtas /command; seed: /status.json /queue.csv /domain.csv /vmta.csv)\n", scheme, ln.Addr())

	errc := make(chan error, 1)
	go func() {
		if c.tls {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	done := make(chan error, 3)
	go func() { done <- waitSchedule() }()
	if c.restartEvery > 0 {
		go func() { restartLoop(ctx, s, c.restartEvery); done <- nil }()
	} else {
		done <- nil
	}
	if c.acctDir != "" {
		w, err := s.NewAcctWriter(sim.AcctOptions{Dir: c.acctDir, MoveTo: c.acctMoveTo, MaxSize: c.acctMaxSize,
			Types: c.acctTypes, SplitDiag: c.acctSplitDiag})
		if err != nil {
			srv.Close()
			return err
		}
		fmt.Fprintf(stdout, "writing %.0f accounting records/s to %s\n", c.acctRate, c.acctDir)
		go func() { done <- acctLoop(ctx, w, c.acctRate, log) }()
	} else {
		done <- nil
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	}
	cancel() // stops the loops
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shutCancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return errors.Join(serveErr, <-done, <-done, <-done)
}

// writeConfig writes -config-out: the API port the sim listens on, its key,
// the accounting files as -acct-dir writes them (absolute paths, as the
// agent may run elsewhere), and, when config-fix is scheduled, google
// deferring at the rate config-fix will halve.
func writeConfig(s *sim.Sim, c config, addr net.Addr) error {
	o := sim.ConfigOptions{APIKey: c.apiKey, TLS: c.tls, AcctRecords: c.acctTypes, AcctMaxSize: c.acctMaxSize,
		AcctSplitDiag: c.acctSplitDiag}
	if a, ok := addr.(*net.TCPAddr); ok {
		o.HTTPPort = a.Port
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil && p != "" {
			return a
		}
		return p
	}
	o.AcctDir, o.AcctMoveTo = abs(c.acctDir), abs(c.acctMoveTo)
	if c.scenarios.Has("config-fix") {
		o.GoogleDeferral = sim.TightGoogleDeferral
	}
	return s.WriteConfig(c.configOut, o)
}

// setupTLS makes a self-signed certificate for the listening address and
// writes its PEM where a client can pick it up.
func setupTLS(srv *http.Server, c config, addr net.Addr) (string, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1", c.hostname}
	if h, _, err := net.SplitHostPort(addr.String()); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	cert, pemBytes, err := sim.SelfSignedCert(hosts...)
	if err != nil {
		return "", err
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	path := c.tlsCertOut
	if path == "" {
		f, err := os.CreateTemp("", "pmta-sim-cert-*.pem")
		if err != nil {
			return "", fmt.Errorf("certificate file: %w", err)
		}
		path = f.Name()
		f.Close()
	}
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		return "", fmt.Errorf("certificate file: %w", err)
	}
	return path, nil
}

func restartLoop(ctx context.Context, s *sim.Sim, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Restart()
		}
	}
}

// acctLoop writes rate records per second in small steps until ctx ends,
// then closes the writer (which moves the last files when -acct-move-to is set).
func acctLoop(ctx context.Context, w *sim.AcctWriter, rate float64, log *slog.Logger) error {
	const step = 200 * time.Millisecond
	t := time.NewTicker(step)
	defer t.Stop()
	var carry float64
	failing := false
	for {
		select {
		case <-ctx.Done():
			return w.Close()
		case now := <-t.C:
			carry += rate * step.Seconds()
			n := int(carry)
			carry -= float64(n)
			err := w.Write(n, now)
			switch {
			case err != nil && !failing:
				log.Error("accounting write failed", "err", err)
				failing = true
			case err == nil && failing:
				log.Info("accounting writes recovered")
				failing = false
			}
		}
	}
}
