package embedtrain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/offline/beir"
)

// CatalogPairs pairs each item's title with its description and tags, the
// signal a brand-new catalog has before any traffic: a short query-like
// text and the longer text it should retrieve. Items with only a title
// give no pair.
func CatalogPairs(items []catalog.Item) []Pair {
	var pairs []Pair
	for _, it := range items {
		body := strings.TrimSpace(strings.Join(append([]string{it.Description}, it.Tags...), " "))
		if it.Title == "" || body == "" {
			continue
		}
		pairs = append(pairs, Pair{A: it.Title, B: body})
	}
	return pairs
}

// CorpusPairs pairs each document's title with its text: the unlabelled
// half of a BEIR dataset's training signal.
func CorpusPairs(docs []beir.Doc) []Pair {
	var pairs []Pair
	for _, d := range docs {
		if d.Title != "" && d.Text != "" {
			pairs = append(pairs, Pair{A: d.Title, B: d.Text})
		}
	}
	return pairs
}

// QueryPairs pairs each query with the body of every document judged
// relevant to it.
func QueryPairs(ds *beir.Dataset, queries []beir.Query) []Pair {
	body := make(map[string]string, len(ds.Corpus))
	for _, d := range ds.Corpus {
		body[d.ID] = d.Body()
	}
	var pairs []Pair
	for _, q := range queries {
		grades := ds.Qrels[q.ID]
		ids := make([]string, 0, len(grades))
		for id, g := range grades {
			if g > 0 {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids) // map order would make runs irreproducible
		for _, id := range ids {
			pairs = append(pairs, Pair{A: q.Text, B: body[id]})
		}
	}
	return pairs
}

// CVConfig sets a cross-validation run.
type CVConfig struct {
	// Folds splits the judged queries (default 5).
	Folds int
	// Seed shuffles queries into folds.
	Seed uint64
	// NoCorpusPairs leaves the title/text pairs out, to measure what the
	// labelled queries alone buy.
	NoCorpusPairs bool
	Train         Config
}

// FoldResult compares the untrained and trained model on one held-out fold.
type FoldResult struct {
	Fold         int
	TrainPairs   int
	TestQueries  int
	Untrained    beir.Report
	Trained      beir.Report
	LastEpochAvg float64
}

// CrossValidate runs k-fold cross-validation over the dataset's judged
// queries: for each fold, a model starts from the untrained weights of
// model, trains on the corpus pairs plus the other folds' query pairs, and
// both models are scored on the held-out fold's queries against the whole
// corpus. No held-out query or its judgements reach training.
func CrossValidate(ctx context.Context, ds *beir.Dataset, model embed.ModelConfig, cfg CVConfig,
	progress func(fold int, e Epoch)) ([]FoldResult, error) {
	if cfg.Folds == 0 {
		cfg.Folds = 5
	}
	if cfg.Folds < 2 || cfg.Folds > len(ds.Queries) {
		return nil, fmt.Errorf("cross-validate: folds: must be in 2..%d (the judged queries)", len(ds.Queries))
	}
	base, err := NewModel(model)
	if err != nil {
		return nil, fmt.Errorf("cross-validate: %w", err)
	}
	docTexts := make([]string, len(ds.Corpus))
	for i, d := range ds.Corpus {
		docTexts[i] = d.Body()
	}
	baseDocs, err := base.EmbedAll(ctx, docTexts)
	if err != nil {
		return nil, fmt.Errorf("cross-validate: %w", err)
	}
	var corpus []Pair
	if !cfg.NoCorpusPairs {
		corpus = CorpusPairs(ds.Corpus)
	}

	var results []FoldResult
	for fold := 0; fold < cfg.Folds; fold++ {
		train, test, err := ds.Fold(fold+1, cfg.Folds, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("cross-validate: %w", err)
		}
		pairs := append(slices.Clone(corpus), QueryPairs(ds, train)...)
		m, err := NewModel(model)
		if err != nil {
			return nil, fmt.Errorf("cross-validate: %w", err)
		}
		res := FoldResult{Fold: fold + 1, TrainPairs: len(pairs), TestQueries: len(test)}
		err = Train(ctx, m, pairs, cfg.Train, func(e Epoch) {
			res.LastEpochAvg = e.Loss
			if progress != nil {
				progress(fold+1, e)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("cross-validate fold %d: %w", fold+1, err)
		}
		if res.Untrained, err = score(ctx, base, baseDocs, ds, test); err != nil {
			return nil, fmt.Errorf("cross-validate fold %d: %w", fold+1, err)
		}
		docs, err := m.EmbedAll(ctx, docTexts)
		if err != nil {
			return nil, fmt.Errorf("cross-validate fold %d: %w", fold+1, err)
		}
		if res.Trained, err = score(ctx, m, docs, ds, test); err != nil {
			return nil, fmt.Errorf("cross-validate fold %d: %w", fold+1, err)
		}
		results = append(results, res)
	}
	return results, nil
}

// score retrieves the top 100 documents for queries with m and scores them
// against their judgements.
func score(ctx context.Context, m *Model, docs [][]float32, ds *beir.Dataset, queries []beir.Query) (beir.Report, error) {
	if len(queries) == 0 {
		return beir.Report{}, errors.New("no queries to score")
	}
	texts := make([]string, len(queries))
	qrels := make(beir.Qrels, len(queries))
	for i, q := range queries {
		texts[i] = q.Text
		qrels[q.ID] = ds.Qrels[q.ID]
	}
	qv, err := m.EmbedAll(ctx, texts)
	if err != nil {
		return beir.Report{}, err
	}
	ranked, err := beir.Search(ctx, docs, qv, 100)
	if err != nil {
		return beir.Report{}, err
	}
	run := make(map[string][]string, len(queries))
	for i, q := range queries {
		ids := make([]string, len(ranked[i]))
		for j, d := range ranked[i] {
			ids[j] = ds.Corpus[d].ID
		}
		run[q.ID] = ids
	}
	return beir.Evaluate(run, qrels), nil
}
