// Command recsys is the search and recommendation service: one binary whose
// subcommands generate a synthetic world, build bundles, serve them and check
// configuration. main only dispatches; each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"gen", "generate a synthetic world (catalog, users, click model)", runGen},
	{"build", "validate a catalog and publish a bundle (embeddings, index, features, ranker)", runBuild},
	{"serve", "serve the current bundle over HTTP", runServe},
	{"check-config", "validate the configuration file and compile its rules", runCheckConfig},
	{"bench", "measure index backends on generated data (bench index --n 100000)", runBench},
	{"eval", "measure quality through the product (eval search --beir DIR, eval recommend --movielens DIR)", runEval},
	{"train", "train a model offline (train embed)", runTrain},
	{"rollback", "point CURRENT at an older bundle, verified first (rollback --list shows them)", runRollback},
	{"runs", "list the training run history (train rank records every run)", runRuns},
	{"simulate", "drive a running server with the synthetic world's users (clicks from the hidden model)", runSimulate},
	{"nightly", "the nightly pipeline: lock, validate the catalog, train rank behind its gate, build, smoke-test, publish", runNightly},
	{"version", "print the version, VCS revision and Go version (also --version)", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ee):
		fmt.Fprintln(os.Stderr, "recsys:", err)
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "recsys:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, nil, stdout, stderr)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("a subcommand is required")
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: recsys <subcommand> [flags]   (recsys <subcommand> --help for its flags)")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
}

// newFlags returns a flag set whose --help prints to stdout and whose errors
// return instead of exiting, so subcommands are testable.
func newFlags(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: recsys %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// target is the second word of a two-word subcommand, e.g. "index" in
// "recsys bench index".
type target struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// runTarget dispatches args[0] among targets; --help lists them.
func runTarget(ctx context.Context, cmd, synopsis string, targets []target, args []string, stdout, stderr io.Writer) error {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	want := strings.Join(names, ", ")
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, "usage: recsys %s\n\n", synopsis)
		for _, t := range targets {
			fmt.Fprintf(stdout, "  %-8s %s\n", t.name, t.summary)
		}
		if len(args) == 0 {
			return fmt.Errorf("%s: a target is required (%s)", cmd, want)
		}
		return flag.ErrHelp
	}
	for _, t := range targets {
		if t.name == args[0] {
			return t.run(ctx, args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("%s: unknown target %q (want %s)", cmd, args[0], want)
}
