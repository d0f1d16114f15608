package main

import (
	"context"
	"fmt"
	"io"

	"github.com/recsys-dev/recsys/world"
)

func runGen(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("gen", "gen [--items N] [--users N] [--seed S] [--out DIR]", stdout)
	items := fs.Int("items", 10000, "number of items (1,000 to 1,000,000)")
	users := fs.Int("users", 1000, "number of users with hidden preferences")
	seed := fs.Int64("seed", 1, "random seed; the same seed writes the same files")
	out := fs.String("out", "var/world", "output directory for catalog.jsonl and users.jsonl")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := world.Config{Items: *items, Users: *users, Seed: *seed}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if err := world.Write(*out, cfg, stdout); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d items and %d users to %s\n", *items, *users, *out)
	return nil
}
