package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/offline/embedtrain"
)

const trainSynopsis = "train embed [--config FILE] (--catalog FILE --out FILE | --beir DIR [--qrels FILE] [--folds K]) " +
	"[--epochs N] [--batch N] [--lr F] [--temperature F] [--seed S]"

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, "usage: recsys %s\n\n  embed   train the hashed embedding model on text pairs\n", trainSynopsis)
		if len(args) == 0 {
			return errors.New("train: a target is required (embed)")
		}
		return flag.ErrHelp
	}
	if args[0] != "embed" {
		return fmt.Errorf("train: unknown target %q (want embed)", args[0])
	}
	return runTrainEmbed(ctx, args[1:], stdout, stderr)
}

func runTrainEmbed(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("train embed", trainSynopsis, stdout)
	path := configFlag(fs)
	catalogPath := fs.String("catalog", "", "catalog to take title/description pairs from (default: build.catalog)")
	out := fs.String("out", "", "where to write the trained ONNX model (catalog mode)")
	dir := fs.String("beir", "", "BEIR folder: cross-validate on its judged queries instead of writing a model")
	qrels := fs.String("qrels", "", "qrels file for --beir (default as in eval search)")
	folds := fs.Int("folds", 5, "cross-validation folds for --beir")
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
		ds, err := beir.Load(ctx, *dir, *qrels)
		if err != nil {
			return err
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
	pairs := embedtrain.CatalogPairs(items)
	m, err := embedtrain.NewModel(cfg.Embed.Model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "training on %d title/description pairs from %s\n", len(pairs), *catalogPath)
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
