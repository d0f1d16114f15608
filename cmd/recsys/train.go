package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/offline/embedtrain"
)

const trainSynopsis = "train embed [--config FILE] (--catalog FILE --out FILE [--pairs LIST] [--events FILE] [--events-topic] " +
	"| --beir DIR [--qrels FILE] --out FILE [--fold I --folds K] | --beir DIR [--qrels FILE] [--folds K]) " +
	"[--epochs N] [--batch N] [--lr F] [--temperature F] [--seed S]"

// runTrain dispatches to one training target; each target owns its flags.
func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runTarget(ctx, "train", "train <embed|rank> [flags]", []target{
		{"embed", "train the hashed embedding model on text pairs", runTrainEmbed},
		{"rank", "train the LambdaMART ranker on logged impressions and actions; promote it past the gate", runTrainRank},
	}, args, stdout, stderr)
}

func runTrainEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train embed", trainSynopsis, stdout)
	path := configFlag(fs)
	catalogPath := fs.String("catalog", "", "catalog to take title/description pairs from (default: build.catalog)")
	out := fs.String("out", "", "where to write the trained ONNX model")
	dir := fs.String("beir", "", "BEIR folder: train on its corpus pairs and judged queries (with --out), or cross-validate on them (without)")
	qrels := fs.String("qrels", "", "qrels file for --beir (default as in eval search)")
	folds := fs.Int("folds", 5, "folds of the judged queries, for cross-validation or --fold")
	fold := fs.Int("fold", 0, "with --beir and --out: leave this fold (1..folds) of the judged queries out of training, for evaluating on it")
	foldSeed := fs.Uint64("fold-seed", 1, "seed of the fold split (eval search and train rank take the same flag)")
	judgedPairs := fs.Bool("judged-pairs", true, "with --beir and --out: train on the judged queries' pairs as well as the corpus title/text pairs")
	var src pairSources
	fs.StringVar(&src.pairs, "pairs", pairCatalog, "training pair sources, comma-separated: "+
		pairCatalog+" (title vs description and tags), "+pairSearch+" (query vs engaged item), "+
		pairCoEngagement+" (items one user engaged with in close succession)")
	fs.StringVar(&src.eventsFile, "events", "", "JSON Lines file of feedback events (the topic's record values) for event pairs")
	fs.BoolVar(&src.eventsTopic, "events-topic", false, "replay kafka.topic for event pairs (with kafka.brokers empty: "+
		"the embedded broker's log in embedded.kafka.data_dir, which a running serve holds locked)")
	fs.DurationVar(&src.coWindow, "co-window", embedtrain.DefaultCoWindow, "co-engagement: most time between two engagements of one user")
	fs.IntVar(&src.coMaxPerUser, "co-max-per-user", embedtrain.DefaultMaxCoPairsPerUser, "co-engagement: most pairs from one user")
	var tc embedtrain.Config
	fs.IntVar(&tc.Epochs, "epochs", embedtrain.DefaultEpochs, "passes over the pairs")
	fs.IntVar(&tc.BatchSize, "batch", embedtrain.DefaultBatchSize, "pairs per step (in-batch negatives)")
	fs.Float64Var(&tc.LearningRate, "lr", embedtrain.DefaultLearningRate, "Adagrad learning rate")
	fs.Float64Var(&tc.Temperature, "temperature", embedtrain.DefaultTemperature, "softmax temperature")
	fs.Uint64Var(&tc.Seed, "seed", 1, "shuffling seed; the same seed reproduces the same model")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if err := tc.Validate(); err != nil {
		return fmt.Errorf("train embed: %w", err)
	}
	start := time.Now()
	report := func(prefix string) func(embedtrain.Epoch) {
		return func(e embedtrain.Epoch) {
			fmt.Fprintf(stdout, "%sepoch %d: loss %.4f over %d steps (%s)\n", prefix, e.Epoch, e.Loss, e.Steps,
				time.Since(start).Round(time.Second))
		}
	}

	if *dir != "" {
		if src.pairs != pairCatalog || src.eventsFile != "" || src.eventsTopic {
			return errors.New("train embed: --beir takes its pairs from the dataset; --pairs and --events* do not apply")
		}
		ds, err := beir.Load(ctx, *dir, *qrels)
		if err != nil {
			return err
		}
		if *out != "" {
			return trainEmbedBEIR(ctx, cfg, ds, foldSpec{*fold, *folds, *foldSeed}, *judgedPairs, tc, *out, stdout, report(""))
		}
		if *fold != 0 {
			return errors.New("train embed: --fold needs --out (without it, --beir cross-validates over every fold)")
		}
		fmt.Fprintf(stdout, "cross-validation: %d folds over the %d judged queries of %s (seeded shuffle, seed %d); "+
			"each fold trains from the untrained model on %s + the other folds' query pairs\n",
			*folds, len(ds.Queries), ds.QrelsPath, tc.Seed, "the corpus title/text pairs")
		res, err := embedtrain.CrossValidate(ctx, ds, cfg.Embed.Model,
			embedtrain.CVConfig{Folds: *folds, Seed: tc.Seed, Train: tc},
			func(fold int, e embedtrain.Epoch) { report(fmt.Sprintf("fold %d ", fold))(e) })
		if err != nil {
			return err
		}
		var u, t beir.Report
		fmt.Fprintf(stdout, "%-5s %8s %8s  %-30s %-30s\n", "fold", "pairs", "queries", "untrained nDCG@10 R@100 MRR@10", "trained nDCG@10 R@100 MRR@10")
		for _, r := range res {
			fmt.Fprintf(stdout, "%-5d %8d %8d  %8.4f %8.4f %8.4f      %8.4f %8.4f %8.4f\n", r.Fold, r.TrainPairs, r.TestQueries,
				r.Untrained.NDCG10, r.Untrained.Recall100, r.Untrained.MRR10, r.Trained.NDCG10, r.Trained.Recall100, r.Trained.MRR10)
			for _, p := range []struct{ sum, add *beir.Report }{{&u, &r.Untrained}, {&t, &r.Trained}} {
				p.sum.Queries += p.add.Queries
				p.sum.NDCG10 += p.add.NDCG10 * float64(p.add.Queries)
				p.sum.Recall10 += p.add.Recall10 * float64(p.add.Queries)
				p.sum.Recall100 += p.add.Recall100 * float64(p.add.Queries)
				p.sum.MRR10 += p.add.MRR10 * float64(p.add.Queries)
			}
		}
		for _, p := range []struct {
			name string
			r    *beir.Report
		}{{"untrained", &u}, {"trained", &t}} {
			n := float64(p.r.Queries)
			p.r.NDCG10, p.r.Recall10, p.r.Recall100, p.r.MRR10 = p.r.NDCG10/n, p.r.Recall10/n, p.r.Recall100/n, p.r.MRR10/n
			fmt.Fprintf(stdout, "\n%s, pooled over all held-out queries:\n", p.name)
			p.r.Print(stdout)
		}
		return nil
	}

	if *out == "" {
		return errors.New("train embed: --out is required (or --beir DIR to cross-validate)")
	}
	if *catalogPath == "" {
		*catalogPath = cfg.Build.Catalog
	}
	items, err := catalog.ReadFile(*catalogPath)
	if err != nil {
		return err
	}
	pairs, err := gatherPairs(ctx, cfg, src, items, stdout, stderr)
	if err != nil {
		return err
	}
	m, err := embedtrain.NewModel(cfg.Embed.Model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "training on %d pairs\n", len(pairs))
	if err := embedtrain.Train(ctx, m, pairs, tc, report("")); err != nil {
		return err
	}
	data, err := m.Export()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(*out, data); err != nil {
		return fmt.Errorf("train embed: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", *out, len(data))
	return nil
}

// Training pair sources of `train embed`.
const (
	pairCatalog      = "catalog"
	pairSearch       = "search"
	pairCoEngagement = "coengagement"
)

// pairSources is what the --pairs and event flags select.
type pairSources struct {
	pairs        string
	eventsFile   string
	eventsTopic  bool
	coWindow     time.Duration
	coMaxPerUser int
}

// parse returns the selected sources, refusing unknown names and event
// pairs without an event source (or an event source no pair uses), which
// would otherwise train a different model than asked without a word.
func (s pairSources) parse() (map[string]bool, error) {
	use := map[string]bool{}
	for _, name := range strings.Split(s.pairs, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case pairCatalog, pairSearch, pairCoEngagement:
			use[name] = true
		default:
			return nil, fmt.Errorf("train embed: --pairs: unknown source %q (want %s, %s, %s)", name, pairCatalog, pairSearch, pairCoEngagement)
		}
	}
	events := s.eventsFile != "" || s.eventsTopic
	needEvents := use[pairSearch] || use[pairCoEngagement]
	switch {
	case needEvents && !events:
		return nil, errors.New("train embed: --pairs search/coengagement need --events FILE or --events-topic")
	case events && !needEvents:
		return nil, errors.New("train embed: --events/--events-topic given but --pairs uses no event pairs (add search or coengagement)")
	case s.coWindow <= 0:
		return nil, errors.New("train embed: --co-window: must be > 0")
	case s.coMaxPerUser < 1:
		return nil, errors.New("train embed: --co-max-per-user: must be >= 1")
	}
	return use, nil
}

// gatherPairs builds the training pairs of every selected source and says
// how many each gave.
func gatherPairs(ctx context.Context, cfg *config.Config, src pairSources, items []catalog.Item, stdout, stderr io.Writer) ([]embedtrain.Pair, error) {
	use, err := src.parse()
	if err != nil {
		return nil, err
	}
	var pairs []embedtrain.Pair
	if use[pairCatalog] {
		cp := embedtrain.CatalogPairs(items)
		fmt.Fprintf(stdout, "catalog: %d title/description pairs from %d items\n", len(cp), len(items))
		pairs = append(pairs, cp...)
	}
	if !use[pairSearch] && !use[pairCoEngagement] {
		return pairs, nil
	}
	log := embedtrain.NewFeedbackLog()
	if src.eventsFile != "" {
		st, err := embedtrain.ReadEventsFile(ctx, src.eventsFile, func(ev feedback.Event) error {
			log.Add(ev)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("train embed: %w", err)
		}
		fmt.Fprintf(stdout, "events file %s: %d lines, %d events, %d invalid skipped\n", src.eventsFile, st.Lines, st.Events, st.Invalid)
		if st.FirstInvalid != "" {
			fmt.Fprintf(stdout, "  first invalid: %s\n", st.FirstInvalid)
		}
	}
	if src.eventsTopic {
		if err := replayTopic(ctx, cfg, log, stdout, stderr); err != nil {
			return nil, err
		}
	}
	ls := log.Stats()
	fmt.Fprintf(stdout, "feedback: %d events (%d duplicates dropped), %d search impressions, %d engagements\n",
		ls.Events, ls.Duplicates, ls.Searches, ls.Engagements)
	text := itemTexts(items)
	if use[pairSearch] {
		sp, st := log.SearchPairs(text)
		fmt.Fprintf(stdout, "search: %d query/item pairs (%d engagements without a search query, %d unknown items, %d repeats)\n",
			st.Pairs, st.NoQuery, st.UnknownItem, st.Duplicates)
		pairs = append(pairs, sp...)
	}
	if use[pairCoEngagement] {
		cp, st := log.CoEngagementPairs(text, src.coWindow, src.coMaxPerUser)
		fmt.Fprintf(stdout, "coengagement: %d item/item pairs within %s (%d unknown items, %d repeats, %d over the per-user cap)\n",
			st.Pairs, src.coWindow, st.UnknownItem, st.Duplicates, st.Capped)
		pairs = append(pairs, cp...)
	}
	return pairs, nil
}

// replayTopic reads the whole events topic into log. With kafka.brokers
// empty it opens the embedded broker's log the way serve does.
func replayTopic(ctx context.Context, cfg *config.Config, log *embedtrain.FeedbackLog, stdout, stderr io.Writer) error {
	logger := cfg.Log.Logger(stderr)
	kcfg := cfg.Kafka.Config
	if len(kcfg.Brokers) == 0 {
		b, err := eventlog.StartBroker(cfg.Embedded.Kafka, logger)
		if err != nil {
			return fmt.Errorf("train embed: --events-topic with kafka.brokers empty: %w "+
				"(if serve is running, set kafka.brokers or RECSYS_KAFKA_BROKERS to the address it logged)", err)
		}
		defer b.Close()
		kcfg.Brokers = b.Addrs()
	}
	st, err := eventlog.Replay(ctx, kcfg, eventlog.Range{}, logger, nil, func(ev feedback.Event, _ *kgo.Record) error {
		log.Add(ev)
		return nil
	})
	if errors.Is(err, eventlog.ErrUnknownTopic) {
		fmt.Fprintf(stdout, "topic %s does not exist yet: no feedback events\n", kcfg.Topic)
		return nil
	}
	if err != nil {
		return fmt.Errorf("train embed: %w", err)
	}
	fmt.Fprintf(stdout, "topic %s: %d records, %d events, %d invalid skipped\n", kcfg.Topic, st.Records, st.Events, st.Invalid)
	return nil
}

// itemTexts looks items up by id and returns the text build embeds them
// from, so event pairs train on exactly what the index will hold.
func itemTexts(items []catalog.Item) embedtrain.ItemText {
	byID := make(map[string]int, len(items))
	for i := range items {
		byID[items[i].ID] = i
	}
	return func(id string) (string, bool) {
		i, ok := byID[id]
		if !ok {
			return "", false
		}
		return items[i].Text(), true
	}
}

// trainEmbedBEIR trains a model on a BEIR folder's title/text pairs and the
// pairs of its judged queries (all of them, or those outside one fold) and
// writes it to out, ready for build (embed.model_file) or eval --model.
func trainEmbedBEIR(ctx context.Context, cfg *config.Config, ds *beir.Dataset, fs foldSpec, judgedPairs bool, tc embedtrain.Config,
	out string, stdout io.Writer, report func(embedtrain.Epoch)) error {
	queries, _, err := fs.split(ds)
	if err != nil {
		return fmt.Errorf("train embed: %w", err)
	}
	if !judgedPairs {
		queries = nil
	}
	fmt.Fprintf(stdout, "training on the corpus title/text pairs and the pairs of %d judged queries of %s (%s)\n",
		len(queries), ds.QrelsPath, fs)
	if err := trainEmbedOn(ctx, cfg, ds, queries, tc, out, report); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// trainEmbedOn trains a model of embed.model on ds's corpus pairs and the
// judged pairs of queries and writes it to out.
func trainEmbedOn(ctx context.Context, cfg *config.Config, ds *beir.Dataset, queries []beir.Query, tc embedtrain.Config,
	out string, report func(embedtrain.Epoch)) error {
	pairs := append(embedtrain.CorpusPairs(ds.Corpus), embedtrain.QueryPairs(ds, queries)...)
	m, err := embedtrain.NewModel(cfg.Embed.Model)
	if err != nil {
		return err
	}
	if err := embedtrain.Train(ctx, m, pairs, tc, report); err != nil {
		return err
	}
	data, err := m.Export()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(out, data); err != nil {
		return fmt.Errorf("train embed: %w", err)
	}
	return nil
}

// foldSpec is the --fold, --folds and --fold-seed flags: fold 0 means
// every judged query.
type foldSpec struct {
	fold, folds int
	seed        uint64
}

// split returns the queries to train on and those to test on: all and
// all without a fold, the other folds and the fold with one.
func (f foldSpec) split(ds *beir.Dataset) (train, test []beir.Query, err error) {
	if f.fold == 0 {
		return ds.Queries, ds.Queries, nil
	}
	return ds.Fold(f.fold, f.folds, f.seed)
}

func (f foldSpec) String() string {
	if f.fold == 0 {
		return "every judged query"
	}
	return fmt.Sprintf("fold %d of %d held out, split seed %d", f.fold, f.folds, f.seed)
}
