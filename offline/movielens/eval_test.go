package movielens

import (
	"context"
	"math"
	"os"
	"testing"
)

const dataDir = "../../../shared/data/movielens-ml-latest-small"

// TestEvaluate is must-show 2: on MovieLens, with each user's last 20% of
// ratings held out by time, the trained ranker beats popularity and the
// retrieval order on NDCG@10 of the held-out positives.
func TestEvaluate(t *testing.T) {
	if _, err := os.Stat(dataDir); err != nil {
		t.Skipf("MovieLens not available at %s (the shared data folder): %v", dataDir, err)
	}
	if raceEnabled {
		t.Skip("skipping the full MovieLens evaluation under -race (minutes there); run go test ./offline/movielens/")
	}
	d, err := Load(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Ratings) != 100836 || len(d.Movies) != 9742 {
		t.Fatalf("loaded %d ratings of %d movies, want 100836 of 9742", len(d.Ratings), len(d.Movies))
	}
	cfg := DefaultConfig()
	rep, err := Evaluate(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("users %d, NDCG@10 popularity %.4f, retrieval %.4f, ranker %.4f (candidate recall %.3f; trained on %d queries / %d rows, %d trees, valid %.4f)",
		rep.Users, rep.Popularity, rep.Retrieval, rep.Ranker, rep.CandRecall, rep.TrainQueries, rep.TrainRows, rep.Trees, rep.ValidNDCG)
	if rep.Ranker <= rep.Popularity || rep.Ranker <= rep.Retrieval {
		t.Fatalf("ranker %.4f does not beat popularity %.4f and retrieval %.4f", rep.Ranker, rep.Popularity, rep.Retrieval)
	}
}

func TestNDCG(t *testing.T) {
	tests := []struct {
		name      string
		labels    []float32
		scores    []float32
		positives int
		want      float64
	}{
		{"best first", []float32{1, 0}, []float32{2, 1}, 1, 1},
		{"second", []float32{1, 0}, []float32{1, 2}, 1, 1 / math.Log2(3)},
		{"missed by retrieval counts in the ideal", []float32{1, 0}, []float32{2, 1}, 2, 1 / (1 + 1/math.Log2(3))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ndcg(tt.labels, tt.scores, tt.positives, 10); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("ndcg = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSplitByTime(t *testing.T) {
	rs := map[int][]Rating{1: {{1, 10, 4, 5}, {1, 11, 4, 1}, {1, 12, 4, 3}, {1, 13, 4, 2}, {1, 14, 4, 4}}}
	past, future := splitByTime(rs, 0.2)
	if len(past[1]) != 4 || len(future[1]) != 1 || future[1][0].Movie != 10 || past[1][0].Movie != 11 {
		t.Fatalf("past %v future %v", past, future)
	}
}
