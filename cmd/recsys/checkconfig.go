package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/rules"
)

func runCheckConfig(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("check-config", "check-config [--config FILE]", stdout)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	if _, err := rules.Compile(cfg.Rules); err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	fmt.Fprintf(stdout, "%s: ok (%d filter rules, %d business rules, %d ranker features)\n",
		*path, len(cfg.Rules.Filters), len(cfg.Rules.Business), len(cfg.Rank.Features))
	return nil
}

// configFlag registers --config, defaulting to $RECSYS_CONFIG or config.yaml.
func configFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	def := os.Getenv("RECSYS_CONFIG")
	if def == "" {
		def = "config.yaml"
	}
	return fs.String("config", def, "configuration file (env RECSYS_CONFIG); RECSYS_* variables override its keys")
}
