package rank

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// synthRanking builds queries whose relevance depends on the features
// non-linearly (an interaction and a threshold), which a linear scorer on
// any single feature cannot rank well, plus a pure-noise feature.
func synthRanking(seed uint64, queries, perQuery int) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	d := &Dataset{Features: []string{"a", "b", "c", "noise"}}
	for range queries {
		for range perQuery {
			a, b, c := rng.Float32(), rng.Float32(), float32(rng.IntN(5))
			noise := float32(rng.NormFloat64())
			u := 2*a*b + 0.5*float32(b32(c >= 3)) - 0.3*a + 0.2*float32(rng.NormFloat64())
			label := float32(0)
			switch {
			case u > 1.1:
				label = 2
			case u > 0.6:
				label = 1
			}
			d.X = append(d.X, a, b, c, noise)
			d.Labels = append(d.Labels, label)
		}
		d.Groups = append(d.Groups, perQuery)
	}
	return d
}

func b32(ok bool) int {
	if ok {
		return 1
	}
	return 0
}

func column(d *Dataset, j int) []float32 {
	f := len(d.Features)
	out := make([]float32, d.Rows())
	for r := range out {
		out[r] = d.X[r*f+j]
	}
	return out
}

func TestNDCG(t *testing.T) {
	tests := []struct {
		name   string
		scores []float32
		labels []float32
		groups []int
		k      int
		want   float64
	}{
		{"perfect", []float32{3, 2, 1}, []float32{2, 1, 0}, []int{3}, 10, 1},
		{"reversed", []float32{1, 2, 3}, []float32{1, 0, 0}, []int{3}, 10, 0.5},
		{"cut at k", []float32{3, 2, 1}, []float32{0, 0, 1}, []int{3}, 2, 0},
		{"query without positives is skipped", []float32{1, 2, 3, 4}, []float32{1, 0, 0, 0}, []int{2, 2}, 10, 1 / math.Log2(3)},
		{"no positives at all", []float32{1, 2}, []float32{0, 0}, []int{2}, 10, 0},
		{"ties keep given order", []float32{1, 1}, []float32{0, 1}, []int{2}, 10, 1 / math.Log2(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NDCG(tt.scores, tt.labels, tt.groups, tt.k); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("NDCG = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWeightedNDCG(t *testing.T) {
	// Two clicked rows; the one shown lower weighs 3, so ranking it first
	// is the ideal and the plain order loses.
	scores, labels, groups := []float32{2, 1, 0}, []float32{1, 1, 0}, []int{3}
	weights := []float32{1, 3, 1}
	ideal := 3 + 1/math.Log2(3)
	tests := []struct {
		name    string
		scores  []float32
		weights []float32
		want    float64
	}{
		{"nil weights is NDCG", scores, nil, NDCG(scores, labels, groups, 10)},
		{"heavy row second", scores, weights, (1 + 3/math.Log2(3)) / ideal},
		{"heavy row first", []float32{1, 2, 0}, weights, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WeightedNDCG(tt.scores, labels, tt.weights, groups, 10); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("WeightedNDCG = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWeightedNDCG_SingleClickQueries: with one click per query a per-query
// normalisation cancels the weights, so each query must count by its
// click's weight instead. Query 1's click was shown on top (weight 1) and the
// model keeps it there; query 2's click was shown fifth (weight 5) and the
// model ranks it third.
func TestWeightedNDCG_SingleClickQueries(t *testing.T) {
	labels := []float32{1, 0, 0, 0, 0, 0, 0, 1}
	weights := []float32{1, 2, 3, 1, 2, 3, 4, 5}
	groups := []int{3, 5}
	scores := []float32{3, 2, 1, 5, 4, 1, 0, 2}
	q2 := 1 / math.Log2(4)
	want := (1*1 + 5*q2) / 6
	if got := WeightedNDCG(scores, labels, weights, groups, 10); math.Abs(got-want) > 1e-12 {
		t.Fatalf("WeightedNDCG = %v, want %v (queries weighted 1 and 5)", got, want)
	}
	if got, plain := WeightedNDCG(scores, labels, nil, groups, 10), (1+q2)/2; math.Abs(got-plain) > 1e-12 {
		t.Fatalf("unweighted = %v, want the plain mean %v", got, plain)
	}
}

func TestLambdaMARTConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*LambdaMARTConfig)
		err    string
	}{
		{"default", func(*LambdaMARTConfig) {}, ""},
		{"no trees", func(c *LambdaMARTConfig) { c.Trees = 0 }, "trees: must be > 0"},
		{"learning rate", func(c *LambdaMARTConfig) { c.LearningRate = 2 }, "learning_rate: must be in (0, 1]"},
		{"bins", func(c *LambdaMARTConfig) { c.Bins = 300 }, "bins: must be in 2..256"},
		{"leaves", func(c *LambdaMARTConfig) { c.MaxLeaves = 1 }, "max_leaves: must be >= 2"},
		{"valid fraction", func(c *LambdaMARTConfig) { c.ValidFraction = 1 }, "valid_fraction: must be in [0, 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultLambdaMARTConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestDataset_Validate(t *testing.T) {
	tests := []struct {
		name string
		d    Dataset
		err  string
	}{
		{"ok", Dataset{Features: []string{"a"}, X: []float32{1, 2}, Labels: []float32{0, 1}, Groups: []int{2}}, ""},
		{"shape", Dataset{Features: []string{"a", "b"}, X: []float32{1, 2}, Labels: []float32{0, 1}, Groups: []int{2}}, "2 values for 2 rows of 2 features"},
		{"groups", Dataset{Features: []string{"a"}, X: []float32{1, 2}, Labels: []float32{0, 1}, Groups: []int{1}}, "groups cover 1 rows, have 2"},
		{"nan", Dataset{Features: []string{"a"}, X: []float32{float32(math.NaN()), 2}, Labels: []float32{0, 1}, Groups: []int{2}}, "row 0 feature a is NaN"},
		{"label", Dataset{Features: []string{"a"}, X: []float32{1, 2}, Labels: []float32{-1, 1}, Groups: []int{2}}, "row 0 label -1"},
		{"weights length", Dataset{Features: []string{"a"}, X: []float32{1, 2}, Labels: []float32{0, 1}, Groups: []int{2}, Weights: []float32{1}}, "1 weights for 2 rows"},
		{"zero weight", Dataset{Features: []string{"a"}, X: []float32{1, 2}, Labels: []float32{0, 1}, Groups: []int{2}, Weights: []float32{1, 0}}, "row 1 weight 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestTrainLambdaMART(t *testing.T) {
	train := synthRanking(1, 300, 30)
	test := synthRanking(2, 200, 30)
	cfg := DefaultLambdaMARTConfig()
	cfg.Trees = 120
	ens, rep, err := TrainLambdaMART(context.Background(), cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	got := NDCG(ens.ScoreRows(test.X, test.Rows()), test.Labels, test.Groups, 10)
	t.Logf("report: rounds %d, trees %d, train %.4f, valid %.4f; test NDCG@10 %.4f", rep.Rounds, rep.Trees, rep.TrainNDCG, rep.ValidNDCG, got)

	t.Run("beats every single feature", func(t *testing.T) {
		for j, name := range test.Features {
			base := NDCG(column(test, j), test.Labels, test.Groups, 10)
			if got <= base+0.02 {
				t.Errorf("trees %.4f, feature %s alone %.4f", got, name, base)
			}
		}
	})
	t.Run("learns the interaction", func(t *testing.T) {
		// a*b is the main signal: a hand-made scorer knowing it sets the bar.
		oracle := make([]float32, test.Rows())
		for r := range oracle {
			a, b, c := test.X[r*4], test.X[r*4+1], test.X[r*4+2]
			oracle[r] = 2*a*b + 0.5*float32(b32(c >= 3)) - 0.3*a
		}
		best := NDCG(oracle, test.Labels, test.Groups, 10)
		if got < best-0.05 {
			t.Errorf("trees %.4f, oracle %.4f", got, best)
		}
	})
	t.Run("report is consistent", func(t *testing.T) {
		if rep.ValidQueries != 60 || rep.TrainQueries != 240 {
			t.Errorf("split %d/%d, want 240/60", rep.TrainQueries, rep.ValidQueries)
		}
		if len(rep.History) != rep.Rounds || rep.Trees > rep.Rounds || rep.Trees != len(ens.Trees) {
			t.Errorf("rounds %d, trees %d, history %d, ensemble %d", rep.Rounds, rep.Trees, len(rep.History), len(ens.Trees))
		}
		if rep.ValidNDCG != slices.Max(rep.History) {
			t.Errorf("kept valid NDCG %v, best of history %v", rep.ValidNDCG, slices.Max(rep.History))
		}
	})
	t.Run("limits hold", func(t *testing.T) {
		for i, tr := range ens.Trees {
			leaves := 0
			for _, n := range tr.Nodes {
				if n.Feature < 0 {
					leaves++
				}
			}
			if leaves > cfg.MaxLeaves {
				t.Fatalf("tree %d has %d leaves", i, leaves)
			}
			if d := depth(tr, 0); d > cfg.MaxDepth {
				t.Fatalf("tree %d has depth %d", i, d)
			}
		}
	})
	t.Run("seeded and independent of workers", func(t *testing.T) {
		c := cfg
		c.Workers = 1
		again, _, err := TrainLambdaMART(context.Background(), c, train)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Trees) != len(ens.Trees) {
			t.Fatalf("%d trees, then %d", len(ens.Trees), len(again.Trees))
		}
		for i := range ens.Trees {
			if !slices.Equal(ens.Trees[i].Nodes, again.Trees[i].Nodes) {
				t.Fatalf("tree %d differs", i)
			}
		}
	})
	t.Run("early stopping ends before the limit", func(t *testing.T) {
		c := cfg
		c.Trees, c.EarlyStopping, c.LearningRate = 2000, 5, 0.5
		_, r, err := TrainLambdaMART(context.Background(), c, train)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rounds >= c.Trees || r.Rounds != r.Trees+c.EarlyStopping {
			t.Fatalf("rounds %d, trees kept %d", r.Rounds, r.Trees)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := TrainLambdaMART(ctx, cfg, train); err == nil {
			t.Fatal("want an error")
		}
	})
}

func depth(t Tree, i int32) int {
	n := t.Nodes[i]
	if n.Feature < 0 {
		return 0
	}
	return 1 + max(depth(t, n.Left), depth(t, n.Right))
}

func TestBinEdges(t *testing.T) {
	tests := []struct {
		name   string
		sorted []float32
		bins   int
		want   []float32
	}{
		{"constant", []float32{3, 3, 3}, 8, nil},
		{"few distinct", []float32{1, 1, 2, 5}, 8, []float32{1, 2}},
		{"quantiles", []float32{1, 2, 3, 4, 5, 6, 7, 8}, 4, []float32{3, 5, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := binEdges(tt.sorted, tt.bins)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("binEdges = %v, want %v", got, tt.want)
			}
			for _, x := range tt.sorted {
				b := binOf(got, x)
				if b < len(got) && x > got[b] || b > 0 && x <= got[b-1] {
					t.Fatalf("x %v in bin %d of %v", x, b, got)
				}
			}
		})
	}
}

// graded is queries whose label is feature 0 itself (0, 1 or 2), with a
// noise feature beside it: a base model weighing feature 0 ranks them
// perfectly.
func graded(seed uint64, queries, perQuery int) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 11))
	d := &Dataset{Features: []string{"grade", "noise"}}
	for range queries {
		for range perQuery {
			g := float32(rng.IntN(3))
			d.X = append(d.X, g, rng.Float32())
			d.Labels = append(d.Labels, g)
		}
		d.Groups = append(d.Groups, perQuery)
	}
	return d
}

// TestTrainLambdaMARTFrom: boosting starts from the base model's scores
// and the ensemble carries it.
func TestTrainLambdaMARTFrom(t *testing.T) {
	ctx := context.Background()
	d := graded(1, 100, 20)
	perfect := &Linear{Weights: []float32{100, 0}, Bias: 1}
	t.Run("from a perfect base the lambdas vanish", func(t *testing.T) {
		// Score gaps of 100 between grades leave every pair's lambda at
		// about e^-100: the trees' leaves stay at 0. Boosting from 0 would
		// fit the grades with leaves of the order of the learning rate.
		cfg := DefaultLambdaMARTConfig()
		cfg.Trees, cfg.ValidFraction = 5, 0
		ens, _, err := TrainLambdaMARTFrom(ctx, cfg, d, perfect)
		if err != nil {
			t.Fatal(err)
		}
		if len(ens.Trees) != 5 || ens.Base == nil || ens.Base == perfect {
			t.Fatalf("%d trees, base %p (given %p): want 5 and a copy", len(ens.Trees), ens.Base, perfect)
		}
		for i, tr := range ens.Trees {
			for _, n := range tr.Nodes {
				if n.Feature < 0 && math.Abs(float64(n.Value)) > 1e-6 {
					t.Fatalf("tree %d has a leaf of %v", i, n.Value)
				}
			}
		}
		from0, _, err := TrainLambdaMART(ctx, cfg, d)
		if err != nil {
			t.Fatal(err)
		}
		top := float32(0)
		for _, n := range from0.Trees[0].Nodes {
			top = max(top, n.Value)
		}
		if top < 0.01 {
			t.Fatalf("from 0 the first tree's largest leaf is %v: the check above cannot tell the two apart", top)
		}
	})
	t.Run("no tree kept unless one beats the base", func(t *testing.T) {
		ens, rep, err := TrainLambdaMARTFrom(ctx, DefaultLambdaMARTConfig(), d, perfect)
		if err != nil {
			t.Fatal(err)
		}
		if len(ens.Trees) != 0 || rep.Trees != 0 || rep.ValidNDCG != 1 {
			t.Fatalf("kept %d trees (report %d), valid NDCG %v: want none and the base's 1", len(ens.Trees), rep.Trees, rep.ValidNDCG)
		}
		row := []float32{2, 0.5}
		if got, want := ens.Score(row), perfect.Score(row); got != want {
			t.Fatalf("score %v, the base's %v", got, want)
		}
	})
	t.Run("corrects a weak base", func(t *testing.T) {
		train, test := synthRanking(1, 300, 30), synthRanking(2, 200, 30)
		weak := &Linear{Weights: []float32{0, 1, 0, 0}} // b alone
		cfg := DefaultLambdaMARTConfig()
		cfg.Trees = 120
		ens, _, err := TrainLambdaMARTFrom(ctx, cfg, train, weak)
		if err != nil {
			t.Fatal(err)
		}
		got := NDCG(ens.ScoreRows(test.X, test.Rows()), test.Labels, test.Groups, 10)
		base := NDCG(column(test, 1), test.Labels, test.Groups, 10)
		if got <= base+0.02 {
			t.Fatalf("boosted %.4f, the base alone %.4f", got, base)
		}
	})
	t.Run("base of the wrong width", func(t *testing.T) {
		_, _, err := TrainLambdaMARTFrom(ctx, DefaultLambdaMARTConfig(), d, &Linear{Weights: []float32{1}})
		if err == nil || !strings.Contains(err.Error(), "base model has 1 weights for 2 features") {
			t.Fatalf("err = %v", err)
		}
	})
}
