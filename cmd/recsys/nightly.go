package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/offline/ranktrain"
	"github.com/recsys-dev/recsys/rules"
)

const nightlySynopsis = "nightly [--config FILE] [--catalog FILE] [--golden FILE] [--train-rank | --judgments FILE] [--max-row-change 0.2] [--max-null-increase 0.1] [--max-price-shift 0.5]"

// Exit codes of `recsys nightly`, for a scheduler (sysexits.h).
const (
	exitDataRefused = 65 // the catalog failed a gate: fix the data
	exitSmokeFailed = 70 // the new bundle answered the golden queries wrong
	exitLocked      = 75 // another run holds the lock: try again later
)

// exitError carries an exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// KindNightly is the run history's kind for a nightly pipeline run.
const KindNightly = "nightly"

// Nightly decisions.
const (
	nightlyPublished = "published"
	nightlyRefused   = "refused"
	nightlyFailed    = "failed"
)

type nightlyGates struct {
	maxRowChange, maxNullIncrease, maxPriceShift float64
}

// runNightly is the nightly pipeline as one command for cron: lock,
// validate the catalog against the live bundle, train the ranker behind
// its gate (optional), build without publishing, answer the golden
// queries with the new bundle, publish. Every step is in the run history
// (recsys runs); a refusal exits with a code the scheduler can act on.
func runNightly(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("nightly", nightlySynopsis, stdout)
	path := configFlag(fs)
	catalogPath := fs.String("catalog", "", "the new catalog (JSONL or CSV); default build.catalog")
	golden := fs.String("golden", "", "smoke queries (JSONL: {\"query\": ..., \"expect\": [item ids], \"k\": 10}); the new bundle must put one expected item in the top k of each")
	trainRank := fs.Bool("train-rank", false, "train the ranker on the event log first; the gate keeps the live ranker unless the new one is not worse")
	judgments := fs.String("judgments", "", "train the ranker on graded judgments (as train rank --judgments) instead")
	runsDir := fs.String("runs", "", "run history directory (default <var>/runs, next to bundles.dir)")
	trainFlags := fs.String("train-flags", "", "more flags for the train rank step, as one string (\"--trees 200 --lr 0.05\")")
	var g nightlyGates
	fs.Float64Var(&g.maxRowChange, "max-row-change", 0.2, "refuse a catalog whose row count differs from the live bundle's by more than this share")
	fs.Float64Var(&g.maxNullIncrease, "max-null-increase", 0.1, "refuse a catalog whose share of empty brand, category or description grew by more than this")
	fs.Float64Var(&g.maxPriceShift, "max-price-shift", 0.5, "refuse a catalog whose median price moved by more than this share")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if *trainRank && *judgments != "" {
		return errors.New("nightly: --train-rank and --judgments are two ways to train: give one")
	}
	if *catalogPath != "" {
		cfg.Build.Catalog = *catalogPath
	}
	if *runsDir == "" {
		*runsDir = filepath.Join(filepath.Dir(cfg.Bundles.Dir), "runs")
	}
	log := cfg.Log.Logger(stderr)
	start := time.Now().UTC()
	rec := &ranktrain.Record{ID: start.Format("20060102T150405.000000000Z") + "-nightly", Kind: KindNightly, Started: start}
	p := &pipeline{rec: rec, out: stdout}
	p.trainFlags = strings.Fields(*trainFlags)
	err = p.run(ctx, cfg, *path, *golden, *trainRank, *judgments, *runsDir, g, log, stdout, stderr)
	rec.Finished = time.Now().UTC()
	switch {
	case err == nil:
		rec.Decision = nightlyPublished
	case errors.As(err, new(*exitError)):
		rec.Decision, rec.Reason = nightlyRefused, err.Error()
	default:
		rec.Decision, rec.Reason = nightlyFailed, err.Error()
	}
	if werr := ranktrain.WriteRecord(*runsDir, rec); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(stdout, "nightly %s: %s (recorded in %s)\n", rec.ID, rec.Decision, *runsDir)
	return err
}

// pipeline records each step of one run.
type pipeline struct {
	rec        *ranktrain.Record
	out        io.Writer
	trainFlags []string
}

func (p *pipeline) step(name string, fn func() (string, error)) error {
	start := time.Now()
	fmt.Fprintf(p.out, "[nightly] %s ...\n", name)
	detail, err := fn()
	s := ranktrain.Step{Name: name, Status: "ok", Detail: detail, Seconds: time.Since(start).Seconds()}
	if err != nil {
		s.Status, s.Detail = "failed", err.Error()
		var ee *exitError
		if errors.As(err, &ee) {
			s.Status = "refused"
		}
	}
	p.rec.Steps = append(p.rec.Steps, s)
	fmt.Fprintf(p.out, "    %s: %s\n", s.Status, s.Detail)
	return err
}

func (p *pipeline) run(ctx context.Context, cfg *config.Config, cfgPath, golden string, trainRank bool, judgments, runsDir string,
	g nightlyGates, log *slog.Logger, stdout, stderr io.Writer) error {
	var unlock func()
	if err := p.step("lock", func() (string, error) {
		var err error
		unlock, err = lockBuilds(cfg.Bundles.Dir)
		return "holding " + filepath.Join(cfg.Bundles.Dir, ".nightly.lock"), err
	}); err != nil {
		return err
	}
	defer unlock()
	if err := p.step("validate catalog", func() (string, error) { return gateCatalog(cfg, g) }); err != nil {
		return err
	}
	if trainRank || judgments != "" {
		if err := p.step("train rank", func() (string, error) {
			args := []string{"--config", cfgPath, "--runs", runsDir}
			if judgments != "" {
				args = append(args, "--judgments", judgments)
			}
			args = append(args, p.trainFlags...)
			if err := runTrainRank(ctx, args, stdout, stderr); err != nil {
				return "", fmt.Errorf("train rank: %w", err)
			}
			recs, err := ranktrain.ReadRecords(runsDir)
			if err != nil {
				return "", err
			}
			for i := len(recs) - 1; i >= 0; i-- {
				if r := recs[i]; strings.HasPrefix(r.Kind, "train-rank") && !r.Started.Before(p.rec.Started) {
					if r.Decision == ranktrain.DecisionPromoted {
						return fmt.Sprintf("run %s promoted the new ranker: %s", r.ID, r.Reason), nil
					}
					return fmt.Sprintf("run %s kept the live ranker: %s", r.ID, r.Reason), nil
				}
			}
			return "", errors.New("train rank recorded no run")
		}); err != nil {
			return err
		}
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	var version string
	if err := p.step("build", func() (string, error) {
		o, err := buildOptions(cfg)
		if err != nil {
			return "", err
		}
		o.Hold, o.Logger = true, log
		items, events, closeLogs, err := openBuildLogs(cfg, log)
		if err != nil {
			return "", err
		}
		defer closeLogs()
		o.Items, o.Events = items, events
		m, err := offline.Build(ctx, o)
		if err != nil {
			return "", err
		}
		version = m.Version
		rulesVersion := "none"
		if m.Rules != nil {
			rulesVersion = m.Rules.Version
		}
		return fmt.Sprintf("bundle %s (%d items, ranker %s %s, rules %s), not yet current", m.Version, m.Items, m.Ranker.Kind, m.Ranker.Version, rulesVersion), nil
	}); err != nil {
		return err
	}
	if golden != "" {
		if err := p.step("smoke", func() (string, error) { return smoke(ctx, cfg, filepath.Join(cfg.Bundles.Dir, version), golden) }); err != nil {
			return err
		}
	}
	return p.step("publish", func() (string, error) {
		if err := bundle.SetCurrent(cfg.Bundles.Dir, version); err != nil {
			return "", err
		}
		return "CURRENT is " + version + " (running servers switch on their next poll or SIGHUP)", nil
	})
}

// lockBuilds takes an exclusive lock beside the bundles, so two builders
// never publish at once; the kernel drops it if the process dies.
func lockBuilds(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".nightly.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &exitError{code: exitLocked, err: fmt.Errorf("another nightly run holds %s: %w", f.Name(), err)}
	}
	return func() { f.Close() }, nil
}

// catalogStats are what the gate compares between catalogs.
type catalogStats struct {
	rows                 int
	emptyBrand, emptyCat float64
	emptyDesc            float64
	medianPrice          float64
}

func statsOf(items []catalog.Item) catalogStats {
	s := catalogStats{rows: len(items)}
	if len(items) == 0 {
		return s
	}
	prices := make([]float64, 0, len(items))
	for _, it := range items {
		if it.Brand == "" {
			s.emptyBrand++
		}
		if it.Category == "" {
			s.emptyCat++
		}
		if it.Description == "" {
			s.emptyDesc++
		}
		prices = append(prices, it.Price)
	}
	n := float64(len(items))
	s.emptyBrand, s.emptyCat, s.emptyDesc = s.emptyBrand/n, s.emptyCat/n, s.emptyDesc/n
	slices.Sort(prices)
	s.medianPrice = prices[len(prices)/2]
	return s
}

// gateCatalog validates the new catalog (every row, as build does) and
// compares it with the live bundle's: a large change in row count, in
// empty fields or in the price distribution refuses the run before
// anything is built.
func gateCatalog(cfg *config.Config, g nightlyGates) (string, error) {
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		return "", &exitError{code: exitDataRefused, err: fmt.Errorf("catalog %s: %w", cfg.Build.Catalog, err)}
	}
	now := statsOf(items)
	live, err := bundle.Current(cfg.Bundles.Dir)
	if errors.Is(err, bundle.ErrNoBundle) {
		return fmt.Sprintf("%d rows valid; no live bundle to compare with", now.rows), nil
	}
	if err != nil {
		return "", err
	}
	old, err := catalog.ReadFile(filepath.Join(cfg.Bundles.Dir, live, bundle.ItemsFile))
	if err != nil {
		return "", fmt.Errorf("live bundle %s: %w", live, err)
	}
	was := statsOf(old)
	var problems []string
	if change := math.Abs(float64(now.rows-was.rows)) / math.Max(1, float64(was.rows)); change > g.maxRowChange {
		problems = append(problems, fmt.Sprintf("%d rows against the live bundle's %d (%.0f%% change, limit %.0f%%)", now.rows, was.rows, 100*change, 100*g.maxRowChange))
	}
	for _, f := range []struct {
		name     string
		now, was float64
	}{{"brand", now.emptyBrand, was.emptyBrand}, {"category", now.emptyCat, was.emptyCat}, {"description", now.emptyDesc, was.emptyDesc}} {
		if f.now-f.was > g.maxNullIncrease {
			problems = append(problems, fmt.Sprintf("empty %s in %.0f%% of rows against %.0f%% (limit +%.0f points)", f.name, 100*f.now, 100*f.was, 100*g.maxNullIncrease))
		}
	}
	if was.medianPrice > 0 {
		if shift := math.Abs(now.medianPrice-was.medianPrice) / was.medianPrice; shift > g.maxPriceShift {
			problems = append(problems, fmt.Sprintf("median price %.2f against %.2f (%.0f%% shift, limit %.0f%%)", now.medianPrice, was.medianPrice, 100*shift, 100*g.maxPriceShift))
		}
	}
	if len(problems) > 0 {
		return "", &exitError{code: exitDataRefused, err: fmt.Errorf("catalog %s refused against live bundle %s: %s", cfg.Build.Catalog, live, strings.Join(problems, "; "))}
	}
	return fmt.Sprintf("%d rows valid (live %s: %d); empty fields and median price within limits", now.rows, live, was.rows), nil
}

// goldenQuery is one smoke query: at least one expected item in the top k.
type goldenQuery struct {
	Query  string   `json:"query"`
	Expect []string `json:"expect"`
	K      int      `json:"k"`
}

// smoke loads the new bundle in the engine serve runs (same load options,
// the configured rules) and answers the golden queries with it.
func smoke(ctx context.Context, cfg *config.Config, dir, golden string) (string, error) {
	f, err := os.Open(golden)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var qs []goldenQuery
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var q goldenQuery
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil || q.Query == "" || len(q.Expect) == 0 {
			return "", fmt.Errorf("golden file line %d: want {\"query\": ..., \"expect\": [ids]} (%v)", line, err)
		}
		if q.K == 0 {
			q.K = 10
		}
		qs = append(qs, q)
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	e, err := bundleEngine(ctx, cfg, dir)
	if err != nil {
		return "", &exitError{code: exitSmokeFailed, err: fmt.Errorf("the new bundle does not load: %w", err)}
	}
	defer e.Close()
	var missed []string
	for _, q := range qs {
		res, err := e.Search(ctx, engine.SearchRequest{Query: q.Query, K: q.K})
		if err != nil {
			return "", &exitError{code: exitSmokeFailed, err: fmt.Errorf("golden query %q: %w", q.Query, err)}
		}
		hit := false
		for _, h := range res.Items {
			hit = hit || slices.Contains(q.Expect, h.ID)
		}
		if !hit {
			missed = append(missed, fmt.Sprintf("%q", q.Query))
		}
	}
	if len(missed) > 0 {
		return "", &exitError{code: exitSmokeFailed, err: fmt.Errorf("%d of %d golden queries found none of their expected items in the new bundle: %s",
			len(missed), len(qs), strings.Join(missed, ", "))}
	}
	return fmt.Sprintf("%d golden queries answered", len(qs)), nil
}

// bundleEngine loads the bundle in dir into an engine with the serving
// knobs and the configured rules, as serve answers, but with the bundle's
// own item features and no real-time store or impressions.
func bundleEngine(ctx context.Context, cfg *config.Config, dir string) (*engine.Engine, error) {
	set, err := rules.Compile(cfg.Rules)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(cfg.Engine, engine.Deps{Load: loadOptions(cfg), Rules: set})
	if err != nil {
		return nil, err
	}
	if err := e.Load(ctx, dir); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}
