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

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/offline/embedtrain"
	"github.com/recsys-dev/recsys/offline/judged"
	"github.com/recsys-dev/recsys/offline/ranktrain"
	"github.com/recsys-dev/recsys/rank"
)

const trainRankSynopsis = "train rank [--config FILE] [--from TIME | --from-offsets P:O,...] [--until TIME] [--window D] " +
	"[--test-fraction F] [--propensity-estimate=false] [--min-explore-clicks N] [--propensity-power P] [--trees N] [--lr F] [--leaves N] [--depth N] [--boost-from linear|none] [--seed S] [--rows FILE] [--out FILE] " +
	"[--promote-to FILE | --no-promote] [--runs DIR] " +
	"[--judgments FILE [--beir DIR [--model FILE] [--ranker FILE] [--fold I --folds K] [--cross-fit N]] [--retrieval MODE]]"

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
	fs.StringVar(&rc.Learner, "learner", rc.Learner, "trees (LambdaMART), linear (a weight per feature by coordinate ascent on NDCG) or both (the better on the test slice faces the gate)")
	linFeatures := fs.String("linear-features", "", "comma-separated features the linear learner may weigh (empty: all)")
	boostFrom := fs.String("boost-from", "", "what the trees start from: linear (the linear ranker of rank.weights; the trees correct it) or none; "+
		"default linear on the event log (its rows are the shown items only) and none with --judgments (their rows are every retrieved candidate)")
	fs.Uint64Var(&rc.Model.Seed, "seed", rc.Model.Seed, "seed of the validation split; the same seed and data give the same model")
	rows := fs.String("rows", "", "CSV file for the joined rows (default <var>/ranktrain/rows.csv)")
	out := fs.String("out", "", "where the trained model goes whatever the decision (default <var>/ranktrain/candidate.onnx)")
	promoteTo := fs.String("promote-to", "", "where a model that passes the gate goes (default build.ranker)")
	noPromote := fs.Bool("no-promote", false, "evaluate and record, but never promote")
	runsDir := fs.String("runs", "", "run history directory (default <var>/runs, next to bundles.dir)")
	judgments := fs.String("judgments", "", "train on graded judgments instead of the topic: BEIR qrels with --beir, "+
		"else a TSV of query, item id, grade answered by the current bundle")
	var ef evalFlags
	ef.register(fs, "with --judgments and --beir: train on the judged queries outside this fold (1..folds)")
	crossFit := fs.Int("cross-fit", 0, "with --judgments and --beir: answer the training queries in this many parts, each with an "+
		"embedding model trained (as train embed --beir does) without that part's queries, so dense scores look as they will on new queries")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	rc.LinearFeatures = splitList(*linFeatures)
	if *judgments == "" && (ef.dir != "" || ef.model != "" || ef.ranker != "" || ef.folds.fold != 0 || ef.retrieval != "" || ef.keep != "") {
		return errors.New("train rank: --beir, --model, --ranker, --keep, --retrieval and --fold go with --judgments")
	}
	if ef.qrels != "" {
		return errors.New("train rank: the judgments file is the qrels: use --judgments, not --qrels")
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
	if *judgments != "" {
		// Judgments are graded by people, not clicked at a position: no
		// position bias to correct.
		rc.PropensityPower, rc.PropensityEstimate = 0, false
		o := ranktrain.Options{Config: rc, ModelPath: *out, PromotePath: *promoteTo, RunsDir: *runsDir,
			RowsPath: *rows, Logger: cfg.Log.Logger(stderr), Progress: stdout}
		if o.Base, o.BaseName, err = boostBase(cfg, *boostFrom, "none"); err != nil {
			return fmt.Errorf("train rank: %w", err)
		}
		if *crossFit == 1 || *crossFit < 0 {
			return errors.New("train rank: --cross-fit: want 0 (off) or at least 2 parts")
		}
		return trainRankJudgments(ctx, cfg, *judgments, ef, *crossFit, o, stdout, stderr)
	}
	current, currentName, err := currentRanker(cfg)
	if err != nil {
		return fmt.Errorf("train rank: %w", err)
	}
	base, baseName, err := boostBase(cfg, *boostFrom, "linear")
	if err != nil {
		return fmt.Errorf("train rank: %w", err)
	}

	logger := cfg.Log.Logger(stderr)
	kcfg := cfg.Kafka.Config
	if len(kcfg.Brokers) == 0 {
		b, err := eventlog.StartBroker(cfg.Embedded.Kafka, logger)
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
		Current: current, CurrentName: currentName, Base: base, BaseName: baseName,
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
	return linearRanker(cfg)
}

// boostBase is the model --boost-from names (def when empty): the linear
// ranker of rank.weights, or nil for none.
func boostBase(cfg *config.Config, from, def string) (*rank.Linear, string, error) {
	if from == "" {
		from = def
	}
	switch from {
	case "none":
		return nil, "", nil
	case "linear":
		return &rank.Linear{Weights: linearWeights(cfg), Bias: cfg.Rank.Bias}, "the linear ranker of rank.weights", nil
	}
	return nil, "", fmt.Errorf("--boost-from: want linear or none, got %q", from)
}

// linearWeights are rank.weights in the order of the bundle's features.
func linearWeights(cfg *config.Config) []float32 {
	names := cfg.Rank.Names()
	w := make([]float32, len(names))
	for i, n := range names {
		w[i] = cfg.Rank.Weights[n]
	}
	return w
}

// linearRanker is the linear model of rank.weights as ONNX.
func linearRanker(cfg *config.Config) ([]byte, string, error) {
	b, err := rank.BuildLinearModel(cfg.Rank.Names(), linearWeights(cfg), cfg.Rank.Bias)
	if err != nil {
		return nil, "", err
	}
	return b, "the linear ranker of rank.weights", nil
}

// parseRange reads the replay range flags.
func parseRange(from, offsets, until string) (eventlog.Range, error) {
	var r eventlog.Range
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

// trainRankJudgments answers every judged query through the engine serve
// runs (a bundle built from a BEIR corpus, or the current bundle for a
// TSV of catalog judgments), labels the candidates with their grades and
// trains, gates and records a ranker exactly as from impressions.
func trainRankJudgments(ctx context.Context, cfg *config.Config, path string, ef evalFlags, crossFit int,
	o ranktrain.Options, stdout, stderr io.Writer) error {
	var (
		qs      []*ranktrain.Query
		st      judged.Stats
		current []byte
		name    string
		err     error
		bundleV string
	)
	depth := cfg.Engine.Candidates
	if ef.dir != "" {
		ds, err := beir.Load(ctx, ef.dir, path)
		if err != nil {
			return err
		}
		train, _, err := ef.folds.split(ds)
		if err != nil {
			return fmt.Errorf("train rank: %w", err)
		}
		if ef.ranker != "" {
			if current, err = os.ReadFile(ef.ranker); err != nil {
				return fmt.Errorf("train rank: --ranker: %w", err)
			}
			name = "the ranker " + ef.ranker
		} else if current, name, err = linearRanker(cfg); err != nil {
			return err
		}
		if crossFit > 0 {
			qs, bundleV, err = crossFitQueries(ctx, cfg, ds.Only(train), ef, crossFit, depth, &st, stdout, stderr)
		} else {
			qs, bundleV, err = corpusQueries(ctx, cfg, ds, train, ef, depth, &st, stdout, stderr)
		}
		if err != nil {
			return err
		}
	} else {
		if ef.model != "" || ef.ranker != "" || ef.folds.fold != 0 || ef.keep != "" || crossFit > 0 {
			return errors.New("train rank: --model, --ranker, --keep, --fold and --cross-fit need --beir (catalog judgments use the current bundle)")
		}
		js, err := judged.ReadTSVFile(path)
		if err != nil {
			return err
		}
		version, err := bundle.Current(cfg.Bundles.Dir)
		if err != nil {
			return fmt.Errorf("train rank: the judgments are answered by the current bundle: %w", err)
		}
		e, err := judged.OpenEngine(ctx, cfg.Engine, loadOptions(cfg), filepath.Join(cfg.Bundles.Dir, version))
		if err != nil {
			return err
		}
		defer e.Close()
		if current, name, err = currentRanker(cfg); err != nil {
			return fmt.Errorf("train rank: %w", err)
		}
		fmt.Fprintf(stdout, "judgments %s: %d queries, answered by bundle %s (counter and user features at their defaults)\n",
			path, len(js), version)
		if qs, err = judged.Queries(ctx, e, js, depth, ef.retrieval, &st); err != nil {
			return fmt.Errorf("train rank: %w", err)
		}
		bundleV = version
	}
	judged.Shuffle(qs, o.Config.Model.Seed)
	fmt.Fprintf(stdout, "candidates hold %d of %d relevant judgments; %d of %d queries have one (%d judgments name unknown items)\n",
		st.Retrieved, st.Relevant, st.Informative, st.Queries, st.Unknown)
	o.Features = st.Features
	o.Current, o.CurrentName = current, name
	o.Judgments = &ranktrain.Judgments{File: path, Bundle: bundleV, Queries: st.Queries, Informative: st.Informative,
		Relevant: st.Relevant, Retrieved: st.Retrieved, Unknown: st.Unknown, CrossFit: crossFit}
	fmt.Fprintf(stdout, "gate: the new model must not be worse than %s on a random %.0f%% of the queries\n", name, 100*o.Config.TestFraction)
	rec, err := ranktrain.Train(ctx, o, nil, qs, ranktrain.JoinStats{})
	if rec != nil {
		fmt.Fprintf(stdout, "run %s recorded in %s: %s\n", rec.ID, o.RunsDir, rec.Decision)
		if rec.PromotedTo != "" {
			fmt.Fprintf(stdout, "promoted to %s\n", rec.PromotedTo)
		}
	}
	return err
}

// corpusQueries answers the training queries with one corpus bundle built
// with --model.
func corpusQueries(ctx context.Context, cfg *config.Config, ds *beir.Dataset, train []beir.Query, ef evalFlags, depth int,
	st *judged.Stats, stdout, stderr io.Writer) ([]*ranktrain.Query, string, error) {
	e, desc, cleanup, err := corpusEngine(ctx, cfg, ef, ds, stderr)
	if err != nil {
		return nil, "", err
	}
	defer cleanup()
	js := judged.FromQrels(train, ds.Qrels)
	fmt.Fprintf(stdout, "judgments %s (%s): %d queries, answered by the corpus bundle %s\n", ds.QrelsPath, ef.folds, len(js), desc)
	qs, err := judged.Queries(ctx, e, js, depth, ef.retrieval, st)
	if err != nil {
		return nil, "", fmt.Errorf("train rank: %w", err)
	}
	return qs, e.Current(), nil
}

// crossFitQueries answers the training queries in k parts, each with a
// corpus bundle whose embedding model train embed's trainer fitted on the
// corpus pairs and the other parts' judged queries only. An embedding
// model scores the queries it trained on far better than new ones; a
// ranker shown those scores learns to trust them more than it should at
// serving, where every query is new. Cross-fitting shows it scores like
// serving's.
func crossFitQueries(ctx context.Context, cfg *config.Config, ds *beir.Dataset, ef evalFlags, k, depth int,
	st *judged.Stats, stdout, stderr io.Writer) ([]*ranktrain.Query, string, error) {
	tmp, err := os.MkdirTemp("", "recsys-crossfit-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	var all []*ranktrain.Query
	var versions []string
	for part := 1; part <= k; part++ {
		fit, answer, err := ds.Fold(part, k, ef.folds.seed)
		if err != nil {
			return nil, "", fmt.Errorf("train rank: --cross-fit: %w", err)
		}
		model := filepath.Join(tmp, fmt.Sprintf("embed-%d.onnx", part))
		fmt.Fprintf(stdout, "cross-fit part %d of %d: embedding model on the corpus pairs and %d judged queries, answering %d\n",
			part, k, len(fit), len(answer))
		if err := trainEmbedOn(ctx, cfg, ds, fit, embedtrain.Config{Seed: 1}, model, nil); err != nil {
			return nil, "", err
		}
		pf := ef
		pf.model, pf.keep = model, ""
		e, desc, cleanup, err := corpusEngine(ctx, cfg, pf, ds, stderr)
		if err != nil {
			return nil, "", err
		}
		qs, err := judged.Queries(ctx, e, judged.FromQrels(answer, ds.Qrels), depth, ef.retrieval, st)
		versions = append(versions, e.Current())
		cleanup()
		if err != nil {
			return nil, "", fmt.Errorf("train rank: %w", err)
		}
		fmt.Fprintf(stdout, "  answered by %s\n", desc)
		all = append(all, qs...)
	}
	return all, strings.Join(versions, ","), nil
}

// splitList is a comma-separated flag's items, nil for an empty flag.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
