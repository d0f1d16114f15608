package embedtrain

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/embed"
)

func tinyConfig() embed.ModelConfig {
	cfg := embed.DefaultModelConfig()
	cfg.Featurizer.Buckets = 256
	cfg.Featurizer.MinN, cfg.Featurizer.MaxN = 3, 3
	cfg.BagDim, cfg.Dim = 6, 5
	return cfg
}

// synthPairs makes pairs that share one rare "code" word and otherwise
// differ, so a model can only match them by learning which codes go
// together: A says "item <code> red", B says "thing <partner> blue".
func synthPairs(n int, seed uint64) []Pair {
	rng := rand.New(rand.NewPCG(seed, 1))
	word := func() string {
		const letters = "bcdfghjklmnpqrstvwxz"
		var sb strings.Builder
		for range 6 {
			sb.WriteByte(letters[rng.IntN(len(letters))])
		}
		return sb.String()
	}
	pairs := make([]Pair, n)
	for i := range pairs {
		pairs[i] = Pair{A: "item " + word() + " red", B: "thing " + word() + " blue"}
	}
	return pairs
}

func featsOf(m *Model, pairs []Pair) [][2]sparse {
	f := make([][2]sparse, len(pairs))
	for i, p := range pairs {
		f[i] = [2]sparse{m.featurize(p.A), m.featurize(p.B)}
	}
	return f
}

// TestTrainer_Gradients checks the analytic gradients against central
// finite differences of the loss on a tiny model.
func TestTrainer_Gradients(t *testing.T) {
	ctx := context.Background()
	m, err := NewModel(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	pairs := synthPairs(5, 3)
	feats := featsOf(m, pairs)
	batch := []int{0, 1, 2, 3, 4}
	tr := newTrainer(m, Config{Temperature: 0.5, Workers: 2}.withDefaults())
	if _, err := tr.gradients(ctx, feats, batch); err != nil {
		t.Fatal(err)
	}
	gradTable := slices.Clone(tr.gradTable)
	gradProj := slices.Clone(tr.gradProj)
	lossAt := func() float64 {
		clear(tr.gradTable)
		l, err := tr.gradients(ctx, feats, batch)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	check := func(name string, w []float32, i int, analytic float32) {
		t.Helper()
		const h = 1e-2
		orig := w[i]
		w[i] = orig + h
		up := lossAt()
		w[i] = orig - h
		down := lossAt()
		w[i] = orig
		numeric := (up - down) / (2 * h)
		if math.Abs(numeric-float64(analytic)) > 2e-3+2e-2*math.Abs(numeric) {
			t.Errorf("%s[%d]: analytic %g, numeric %g", name, i, analytic, numeric)
		}
	}
	bag := m.cfg.BagDim
	checked := 0
	for _, id := range feats[0][0].ids[:3] {
		for r := 0; r < bag; r += 2 {
			check("table", m.Table, int(id)*bag+r, gradTable[int(id)*bag+r])
			checked++
		}
	}
	for i := 0; i < len(m.Proj); i += 3 {
		check("proj", m.Proj, i, gradProj[i])
		checked++
	}
	if checked < 10 {
		t.Fatalf("checked only %d weights", checked)
	}
}

// recallAt1 is the share of pairs whose A embeds closest to its own B.
func recallAt1(t *testing.T, m *Model, pairs []Pair) float64 {
	t.Helper()
	as, bs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		as[i], bs[i] = p.A, p.B
	}
	ea, err := m.EmbedAll(context.Background(), as)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := m.EmbedAll(context.Background(), bs)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i := range ea {
		best, bestS := -1, math.Inf(-1)
		for j := range eb {
			if s := dot64(ea[i], eb[j]); s > bestS {
				best, bestS = j, s
			}
		}
		if best == i {
			hits++
		}
	}
	return float64(hits) / float64(len(pairs))
}

func TestTrain_LearnsPairs(t *testing.T) {
	cfg := embed.DefaultModelConfig()
	cfg.Featurizer.Buckets = 1 << 12
	cfg.BagDim, cfg.Dim = 32, 32
	m, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pairs := synthPairs(400, 5)
	before := recallAt1(t, m, pairs)
	var losses []float64
	err = Train(context.Background(), m, pairs, Config{Epochs: 8, BatchSize: 64, Seed: 1},
		func(e Epoch) { losses = append(losses, e.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	after := recallAt1(t, m, pairs)
	t.Logf("recall@1 over 400 candidates: untrained %.3f, trained %.3f; loss by epoch %.3f", before, after, losses)
	if len(losses) != 8 || losses[len(losses)-1] >= losses[0] {
		t.Errorf("loss did not fall: %v", losses)
	}
	// The codes share no characters by design beyond chance, so only
	// learning can pair them; chance is 1/400.
	if after < 0.5 || after <= before {
		t.Errorf("recall@1 %.3f after training (%.3f before), want >= 0.5", after, before)
	}
}

func TestTrain_Reproducible(t *testing.T) {
	pairs := synthPairs(100, 9)
	run := func(workers int) *Model {
		m, err := NewModel(tinyConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := Train(context.Background(), m, pairs, Config{Epochs: 2, BatchSize: 16, Seed: 4, Workers: workers}, nil); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := run(1), run(3)
	if !slices.Equal(a.Table, b.Table) || !slices.Equal(a.Proj, b.Proj) {
		t.Error("same seed and pairs gave different weights with 1 and 3 workers")
	}
	init, _ := NewModel(tinyConfig())
	if slices.Equal(a.Proj, init.Proj) {
		t.Error("training left the projection unchanged")
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero is defaults", Config{}, ""},
		{"batch of one", Config{BatchSize: 1}, "batch_size: must be >= 2"},
		{"negative rate", Config{LearningRate: -1}, "learning_rate"},
		{"nan temperature", Config{Temperature: math.NaN()}, "temperature"},
		{"negative epochs", Config{Epochs: -1}, "epochs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := fmt.Sprint(err); (tt.want == "") != (err == nil) || !strings.Contains(got, tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func BenchmarkTrain_Step(b *testing.B) {
	m, err := NewModel(embed.DefaultModelConfig())
	if err != nil {
		b.Fatal(err)
	}
	pairs := synthPairs(128, 2)
	for i := range pairs {
		pairs[i].B += " " + strings.Repeat("a longer description with more words ", 8)
	}
	feats := featsOf(m, pairs)
	tr := newTrainer(m, Config{}.withDefaults())
	batch := make([]int, len(pairs))
	for i := range batch {
		batch[i] = i
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.step(context.Background(), feats, batch); err != nil {
			b.Fatal(err)
		}
	}
}
