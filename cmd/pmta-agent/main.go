// Command pmta-agent collects PowerMTA metrics — the HTTP management interface
// and the accounting log — and pushes them to InfluxDB and OTLP.
//
// This is the only package that knows every other one: it reads flags and
// configuration, builds the sources and sinks, turns signals into context
// cancellation and exits with a status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `pmta-agent — PowerMTA metrics for InfluxDB and OTLP

Usage:
  pmta-agent run [-config FILE]            run the agent until SIGINT/SIGTERM; SIGHUP
                                           reloads the configuration
  pmta-agent once [-config FILE]           one collection round and a preview of the accounting
                                           files, printed as line protocol
  pmta-agent once -sinks [-stall 30s] [-config FILE]
                                           the round through the configured sinks, each one's answer said
  pmta-agent check-config [-config FILE]   load and validate the configuration, and say what was
                                           taken from PowerMTA's configuration
  pmta-agent init [-config FILE] [-pmta-config FILE]
                                           print the effective configuration as YAML, what was
                                           taken from PowerMTA's configuration marked
  pmta-agent demo [-dialect pmta|seed] [-scenario LIST] [-dir DIR]
                                           run against a built-in PowerMTA simulator, print to stdout;
                                           its scenarios show IP vs pool verdicts and config changes
  pmta-agent backfill [-config FILE] FILE… aggregate whole accounting files into the sinks
  pmta-agent command [-config FILE] [-json] COMMAND…
                                           send one command to PowerMTA with the API settings
                                           (pause queue outlook.com/*, schedule gmail.com/*,
                                           show status, …); exit 1 if PowerMTA refused it
  pmta-agent impact [-config FILE] [-at TIME] [-window 2h] [-focus KIND=VALUE] [-min-attempts 200]
                    [-format table|json|lines] [-send] [FILE…]
                                           deferrals and bounces before → after the latest configuration
                                           change (or -at TIME), per ISP and for what it touched
  pmta-agent version                       print the version

Configuration: a YAML file (see deploy/pmta-agent.example.yaml), overridden by
PMTA_AGENT_* environment variables (PMTA_AGENT_SINKS__INFLUX__TOKEN=… sets
sinks.influx.token). Without -config, the defaults and the environment alone apply.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// SIGHUP never ends the agent: run reloads its configuration on it
	// (systemctl reload), and the other commands, which end by themselves,
	// let it pass unheeded rather than die of a closed terminal.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the default behaviour returns, so a second
		// one ends a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()

	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, rest, stdout, stderr, hups)
	case "once":
		err = cmdOnce(ctx, rest, stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(rest, stdout, stderr)
	case "init":
		err = cmdInit(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, stdout, stderr)
	case "backfill":
		err = cmdBackfill(ctx, rest, stdout, stderr)
	case "command":
		err = cmdCommand(ctx, rest, stdout, stderr)
	case "impact":
		err = cmdImpact(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "pmta-agent", buildVersion(), versionDetails())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "pmta-agent: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	var ce configError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0 // the flag set printed the command's usage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pmta-agent %s: %v\n", cmd, err)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "pmta-agent %s: %v\n", cmd, err)
		return exitConfig
	default:
		fmt.Fprintf(stderr, "pmta-agent %s: %v\n", cmd, err)
		return 1
	}
}

// errHelp is -h or -help on a command: its usage is printed, exit 0.
var errHelp = errors.New("help requested")

// usageError marks bad flags or arguments (exit status 2).
type usageError struct{ error }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// flagSet says whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err}
	}
	return nil
}

// versionDetails says what the binary was built from: the Go version, and
// the commit when the build recorded it.
func versionDetails() string {
	out := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "+modified"
				}
			}
		}
		if rev != "" {
			out += " commit " + rev + modified
		}
	}
	return out
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
