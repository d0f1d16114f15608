package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/recsys-dev/recsys/bundle"
)

const rollbackSynopsis = "rollback [--config FILE] [--to VERSION] [--list]"

// runRollback is `recsys rollback`: point CURRENT at an older published
// bundle (by default the one before the current), after verifying it. A
// running serve switches on its next poll or SIGHUP, with the usual smoke
// test, so a damaged target never goes live.
func runRollback(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("rollback", rollbackSynopsis, stdout)
	path := configFlag(fs)
	to := fs.String("to", "", "version to serve (default: the newest version older than the current one)")
	list := fs.Bool("list", false, "list the published versions, the current one marked, and change nothing")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	root := cfg.Bundles.Dir
	versions, err := bundle.Versions(root)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	current, err := bundle.Current(root)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if *list {
		for _, v := range versions {
			mark := " "
			if v == current {
				mark = "*"
			}
			fmt.Fprintf(stdout, "%s %s\n", mark, v)
		}
		return nil
	}
	target := *to
	if target == "" {
		i := slices.Index(versions, current)
		if i <= 0 {
			return fmt.Errorf("rollback: no published version older than the current %s (versions: %v)", current, versions)
		}
		target = versions[i-1]
	}
	if !slices.Contains(versions, target) {
		return fmt.Errorf("rollback: --to %s: not a published version under %s (versions: %v)", target, root, versions)
	}
	if target == current {
		return fmt.Errorf("rollback: %s is already current", target)
	}
	if _, err := bundle.Open(filepath.Join(root, target)); err != nil {
		return fmt.Errorf("rollback: refusing %s: %w", target, err)
	}
	if err := bundle.SetCurrent(root, target); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	fmt.Fprintf(stdout, "CURRENT: %s -> %s (a running serve switches on its next poll or SIGHUP)\n", current, target)
	return nil
}
