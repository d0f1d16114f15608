package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline/ranktrain"
	"github.com/recsys-dev/recsys/rank"
)

const trainRankSynopsis = "train rank [--config FILE] [--from TIME | --from-offsets P:O,...] [--until TIME] [--window D] " +
	"[--test-fraction F] [--propensity-estimate=false] [--min-explore-clicks N] [--propensity-power P] [--trees N] [--lr F] [--leaves N] [--depth N] [--seed S] [--rows FILE] [--out FILE] " +
	"[--promote-to FILE | --no-promote] [--runs DIR]"

// runTrainRank is `recsys train rank`: replay the events topic, train the
// tree ranker, gate it against the current ranker and promote it into
// build.ranker, recording the run in the history `recsys runs` lists.
func runTrainRank(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train rank", trainRankSynopsis, stdout)
	path := configFlag(fs)
	from := fs.String("from", "", "read events logged at or after this time (RFC 3339); default the beginning of the topic")
	fromOffsets := fs.String("from-offsets", "", "start partitions at these offsets instead, as partition:offset,... (others start per --from)")
	until := fs.String("until", "", "read events logged before this time (RFC 3339); default the end of the topic when the run starts")
	rc := ranktrain.DefaultConfig()
	fs.DurationVar(&rc.Window, "window", rc.Window, "attribution window: actions later than this after an impression do not label it")
	fs.Float64Var(&rc.TestFraction, "test-fraction", rc.TestFraction, "newest fraction of the queries the gate tests on")
	fs.BoolVar(&rc.PropensityEstimate, "propensity-estimate", rc.PropensityEstimate,
		"estimate the position-bias power from randomized (explore) impressions; see engine.explore_rate")
	fs.IntVar(&rc.MinExploreClicks, "min-explore-clicks", rc.MinExploreClicks, "fewest clicks on explore impressions the estimate needs")
	fs.Float64Var(&rc.PropensityPower, "propensity-power", rc.PropensityPower,
		"position-bias correction when not estimated: rows weigh (position+1)^power (0: none)")
	fs.IntVar(&rc.MinTestQueries, "min-test-queries", rc.MinTestQueries, "fewest test queries with a click or purchase the gate decides on")
	fs.IntVar(&rc.Model.Trees, "trees", rc.Model.Trees, "most boosting rounds (early stopping usually ends sooner)")
	fs.Float64Var(&rc.Model.LearningRate, "lr", rc.Model.LearningRate, "shrinkage")
	fs.IntVar(&rc.Model.MaxLeaves, "leaves", rc.Model.MaxLeaves, "most leaves per tree")
	fs.IntVar(&rc.Model.MaxDepth, "depth", rc.Model.MaxDepth, "most depth per tree")
	fs.IntVar(&rc.Model.MinLeafRows, "min-leaf", rc.Model.MinLeafRows, "fewest rows per leaf")
	fs.IntVar(&rc.Model.Bins, "bins", rc.Model.Bins, "histogram bins per feature (2..256)")
	fs.IntVar(&rc.Model.EarlyStopping, "early-stopping", rc.Model.EarlyStopping, "rounds without a better validation NDCG before stopping (0: never)")
	fs.Uint64Var(&rc.Model.Seed, "seed", rc.Model.Seed, "seed of the validation split; the same seed and data give the same model")
	rows := fs.String("rows", "", "CSV file for the joined rows (default <var>/ranktrain/rows.csv)")
	out := fs.String("out", "", "where the trained model goes whatever the decision (default <var>/ranktrain/candidate.onnx)")
	promoteTo := fs.String("promote-to", "", "where a model that passes the gate goes (default build.ranker)")
	noPromote := fs.Bool("no-promote", false, "evaluate and record, but never promote")
	runsDir := fs.String("runs", "", "run history directory (default <var>/runs, next to bundles.dir)")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	r, err := parseRange(*from, *fromOffsets, *until)
	if err != nil {
		return fmt.Errorf("train rank: %w", err)
	}
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("train rank: %w", err)
	}
	varDir := filepath.Dir(cfg.Bundles.Dir)
	orDefault := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	orDefault(rows, filepath.Join(varDir, "ranktrain", "rows.csv"))
	orDefault(out, filepath.Join(varDir, "ranktrain", "candidate.onnx"))
	orDefault(promoteTo, cfg.Build.Ranker)
	orDefault(runsDir, filepath.Join(varDir, "runs"))
	if *noPromote {
		*promoteTo = ""
	}
	if err := os.MkdirAll(filepath.Dir(*rows), 0o755); err != nil {
		return fmt.Errorf("train rank: %w", err)
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	current, currentName, err := currentRanker(cfg)
	if err != nil {
		return fmt.Errorf("train rank: %w", err)
	}

	logger := cfg.Log.Logger(stderr)
	kcfg := cfg.Kafka
	if len(kcfg.Brokers) == 0 {
		b, err := feedback.StartBroker(cfg.Embedded.Kafka, logger)
		if err != nil {
			return fmt.Errorf("train rank: kafka.brokers is empty and the embedded broker's log cannot be opened: %w "+
				"(if serve is running, set kafka.brokers or RECSYS_KAFKA_BROKERS to the address it logged)", err)
		}
		defer b.Close()
		kcfg.Brokers = b.Addrs()
	}
	fmt.Fprintf(stdout, "gate: the new model must not be worse than %s on the newest %.0f%% of the queries\n", currentName, 100*rc.TestFraction)
	rec, err := ranktrain.Run(ctx, ranktrain.Options{
		Config: rc, Features: cfg.Rank.Names(), Events: kcfg, Range: r,
		Current: current, CurrentName: currentName,
		RowsPath: *rows, ModelPath: *out, PromotePath: *promoteTo, RunsDir: *runsDir,
		Logger: logger, Progress: stdout,
	})
	if rec != nil {
		fmt.Fprintf(stdout, "run %s recorded in %s: %s\n", rec.ID, *runsDir, rec.Decision)
		if rec.PromotedTo != "" {
			fmt.Fprintf(stdout, "promoted to %s: the next `recsys build` puts it in the bundle\n", rec.PromotedTo)
		}
	}
	return err
}

// currentRanker is the model the next bundle would carry without this run:
// the promoted file when it exists, else the linear model of rank.weights.
func currentRanker(cfg *config.Config) ([]byte, string, error) {
	if p := cfg.Build.Ranker; p != "" {
		b, err := os.ReadFile(p)
		if err == nil {
			return b, "the promoted model " + p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("build.ranker: %w", err)
		}
	}
	names := cfg.Rank.Names()
	w := make([]float32, len(names))
	for i, n := range names {
		w[i] = cfg.Rank.Weights[n]
	}
	b, err := rank.BuildLinearModel(names, w, cfg.Rank.Bias)
	if err != nil {
		return nil, "", err
	}
	return b, "the linear ranker of rank.weights", nil
}

// parseRange reads the replay range flags.
func parseRange(from, offsets, until string) (feedback.Range, error) {
	var r feedback.Range
	var err error
	if from != "" {
		if r.From, err = time.Parse(time.RFC3339, from); err != nil {
			return r, fmt.Errorf("--from: %w", err)
		}
	}
	if until != "" {
		if r.Until, err = time.Parse(time.RFC3339, until); err != nil {
			return r, fmt.Errorf("--until: %w", err)
		}
	}
	if offsets != "" {
		r.FromOffsets = map[int32]int64{}
		for _, part := range strings.Split(offsets, ",") {
			ps, offs, ok := strings.Cut(strings.TrimSpace(part), ":")
			p, perr := strconv.ParseInt(ps, 10, 32)
			o, oerr := strconv.ParseInt(offs, 10, 64)
			if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
				return r, fmt.Errorf("--from-offsets: %q is not partition:offset", part)
			}
			r.FromOffsets[int32(p)] = o
		}
	}
	return r, nil
}
