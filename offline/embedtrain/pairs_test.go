package embedtrain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/offline/beir"
)

func TestCatalogPairs(t *testing.T) {
	items := []catalog.Item{
		{ID: "1", Title: "Red Shoe", Description: "a shoe", Tags: []string{"red", "footwear"}},
		{ID: "2", Title: "Title only"},
		{ID: "3", Title: "Tagged", Tags: []string{"x"}},
	}
	got := CatalogPairs(items)
	want := []Pair{{"Red Shoe", "a shoe red footwear"}, {"Tagged", "x"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// synthDataset is a BEIR-shaped dataset whose queries and documents use
// disjoint vocabularies linked by a hidden synonym table: query i names
// three concepts with query words, its document names them with document
// words. Untrained, a query shares no feature with its document; a model
// that learns the table from some queries can answer held-out ones, since
// they combine the same concepts differently.
func synthDataset(n int) *beir.Dataset {
	rng := rand.New(rand.NewPCG(12, 13))
	word := func() string {
		const letters = "bcdfghjklmnpqrstvwxz"
		b := make([]byte, 7)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	const concepts = 40
	qw, dw := make([]string, concepts), make([]string, concepts)
	for k := range concepts {
		qw[k], dw[k] = word(), word()
	}
	ds := &beir.Dataset{Qrels: beir.Qrels{}}
	for i := range n {
		ks := rng.Perm(concepts)[:3]
		did, qid := fmt.Sprintf("d%d", i), fmt.Sprintf("q%d", i)
		ds.Corpus = append(ds.Corpus, beir.Doc{ID: did, Text: dw[ks[0]] + " " + dw[ks[1]] + " " + dw[ks[2]] + " " + word()})
		ds.Queries = append(ds.Queries, beir.Query{ID: qid, Text: qw[ks[0]] + " " + qw[ks[1]] + " " + qw[ks[2]]})
		ds.Qrels[qid] = map[string]int{did: 1}
	}
	return ds
}

func TestCrossValidate(t *testing.T) {
	ds := synthDataset(200)
	cfg := embed.DefaultModelConfig()
	cfg.Featurizer.Buckets = 1 << 12
	cfg.BagDim, cfg.Dim = 32, 32
	res, err := CrossValidate(context.Background(), ds, cfg, CVConfig{Folds: 2, Seed: 1,
		Train: Config{Epochs: 6, BatchSize: 32, Seed: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].TestQueries+res[1].TestQueries != 200 {
		t.Fatalf("folds %+v, want 2 covering 200 queries", res)
	}
	for _, r := range res {
		t.Logf("fold %d: untrained nDCG@10 %.3f, trained %.3f", r.Fold, r.Untrained.NDCG10, r.Trained.NDCG10)
		// Untrained, queries and documents share no feature; only what
		// training learned from the other fold can lift the held-out one.
		if r.Trained.NDCG10 < r.Untrained.NDCG10+0.2 {
			t.Errorf("fold %d: trained nDCG@10 %.3f, untrained %.3f: want a gain of at least 0.2", r.Fold, r.Trained.NDCG10, r.Untrained.NDCG10)
		}
		if r.Trained.Queries != r.TestQueries || r.Untrained.Queries != r.TestQueries {
			t.Errorf("fold %d scored %d/%d queries, want %d", r.Fold, r.Untrained.Queries, r.Trained.Queries, r.TestQueries)
		}
	}
	if _, err := CrossValidate(context.Background(), ds, cfg, CVConfig{Folds: 1}, nil); err == nil {
		t.Error("one fold accepted")
	}
}
