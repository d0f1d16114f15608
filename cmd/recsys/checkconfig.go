package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/recsys-dev/recsys/api"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/rules"
)

func runCheckConfig(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("check-config", "check-config [--config FILE]", stdout)
	path := configFlag(fs)
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	set, err := rules.Compile(cfg.Rules)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	keys, err := api.LoadKeys(cfg.Server.Auth, os.Getenv)
	if err != nil {
		return fmt.Errorf("%s: server.%w", *path, err)
	}
	warning, err := api.CheckExposure(cfg.Server, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	if warning != "" {
		fmt.Fprintf(stdout, "%s: warning: %s\n", *path, warning)
	}
	from := *path
	if cfg.Rules.File != "" {
		// The rules file is what serve will run.
		data, err := os.ReadFile(cfg.Rules.File)
		if err != nil {
			return fmt.Errorf("%s: rules.file: %w", *path, err)
		}
		if _, set, err = rules.ParseFile(data); err != nil {
			return fmt.Errorf("%s: %w", cfg.Rules.File, err)
		}
		from = cfg.Rules.File
	}
	filters, business := set.Len()
	fmt.Fprintf(stdout, "%s: ok (%d filter rules, %d business rules from %s, %d ranker features)\n",
		*path, filters, business, from, len(cfg.Rank.Features))
	return nil
}

// configFlag registers --config, defaulting to $RECSYS_CONFIG or config.yaml.
func configFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("RECSYS_CONFIG")
	if def == "" {
		def = "config.yaml"
	}
	return fs.String("config", def, "configuration file (env RECSYS_CONFIG); RECSYS_* variables override its keys")
}

// parseWithConfig parses args and loads the configuration file --config
// names, with RECSYS_* overrides applied.
func parseWithConfig(fs *flag.FlagSet, path *string, args []string) (*config.Config, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return config.Load(*path, os.Environ())
}
