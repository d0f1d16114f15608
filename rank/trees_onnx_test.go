package rank

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/internal/realtime"
)

func trainedEnsemble(t testing.TB) *Ensemble {
	t.Helper()
	cfg := DefaultLambdaMARTConfig()
	cfg.Trees = 60
	ens, _, err := TrainLambdaMART(context.Background(), cfg, synthRanking(3, 200, 25))
	if err != nil {
		t.Fatal(err)
	}
	return ens
}

// boostedEnsemble is trained from a linear base (weights on every
// feature, and a bias), as train rank boosts from rank.weights.
func boostedEnsemble(t testing.TB) *Ensemble {
	t.Helper()
	cfg := DefaultLambdaMARTConfig()
	cfg.Trees = 60
	base := &Linear{Weights: []float32{0.5, 1, -0.2, 0.05}, Bias: 0.3}
	ens, _, err := TrainLambdaMARTFrom(context.Background(), cfg, synthRanking(3, 200, 25), base)
	if err != nil {
		t.Fatal(err)
	}
	if len(ens.Trees) == 0 {
		t.Fatal("no tree beat the base: the tests below would check the linear part only")
	}
	return ens
}

func openTrees(t testing.TB, ens *Ensemble, want []string) (*Scorer, error) {
	t.Helper()
	orttest.Init(t)
	data, err := BuildTreeModel(ens)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/trees.onnx"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return OpenScorer(ScorerConfig{ModelPath: path, Sessions: 1}, want)
}

// TestBuildTreeModel_Parity is the exporter's contract: ONNX Runtime scores
// equal the Go traversal within 1e-5, on random rows and on rows sitting
// exactly on split thresholds, where an off-by-one comparison would show;
// with a linear base, within 1e-5 of the linear terms' magnitude (Gemm may
// sum them in another order).
func TestBuildTreeModel_Parity(t *testing.T) {
	t.Run("trees", func(t *testing.T) { testParity(t, trainedEnsemble(t)) })
	t.Run("boosted from a linear model", func(t *testing.T) { testParity(t, boostedEnsemble(t)) })
}

func testParity(t *testing.T, ens *Ensemble) {
	s, err := openTrees(t, ens, ens.Features)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := len(ens.Features)
	rng := rand.New(rand.NewPCG(9, 9))
	thresholds := make([][]float32, f)
	for _, tr := range ens.Trees {
		for _, n := range tr.Nodes {
			if n.Feature >= 0 {
				thresholds[n.Feature] = append(thresholds[n.Feature], n.Threshold)
			}
		}
	}
	tests := []struct {
		name string
		j    func(j int) float32
	}{
		{"random", func(int) float32 { return rng.Float32()*1.2 - 0.1 }},
		{"on thresholds", func(j int) float32 {
			if len(thresholds[j]) == 0 {
				return rng.Float32()
			}
			return thresholds[j][rng.IntN(len(thresholds[j]))]
		}},
		{"far outside", func(int) float32 { return float32(rng.NormFloat64() * 1e4) }},
	}
	const n = 500
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := make([]float32, n*f)
			for r := range n {
				for j := range f {
					x[r*f+j] = tt.j(j)
				}
			}
			got, err := s.Score(context.Background(), x, n)
			if err != nil {
				t.Fatal(err)
			}
			want := ens.ScoreRows(x, n)
			for r := range n {
				tol := 1e-5
				if b := ens.Base; b != nil {
					// Relative to the terms Gemm sums: far outside, they
					// are 1e4 each and cancel.
					terms := math.Abs(float64(b.Bias))
					for j, w := range b.Weights {
						terms += math.Abs(float64(w * x[r*f+j]))
					}
					tol *= max(1, terms)
				}
				if d := math.Abs(float64(got[r] - want[r])); d > tol {
					t.Fatalf("row %d: onnx %v, go %v (diff %g)", r, got[r], want[r], d)
				}
			}
		})
	}
}

func TestBuildTreeModel(t *testing.T) {
	leaf := func(v float32) TreeNode { return TreeNode{Feature: -1, Value: v} }
	tests := []struct {
		name string
		ens  *Ensemble
		err  string
	}{
		{"nil", nil, "nil ensemble"},
		{"no features", &Ensemble{}, "no features"},
		{"dangling child", &Ensemble{Features: []string{"a"}, Trees: []Tree{{Nodes: []TreeNode{{Feature: 0, Left: 1, Right: 5}, leaf(1)}}}}, "child 5 out of range"},
		{"unknown feature", &Ensemble{Features: []string{"a"}, Trees: []Tree{{Nodes: []TreeNode{{Feature: 3, Left: 1, Right: 2}, leaf(1), leaf(2)}}}}, "feature 3 of 1"},
		{"cycle", &Ensemble{Features: []string{"a"}, Trees: []Tree{{Nodes: []TreeNode{{Feature: 0, Left: 0, Right: 1}, leaf(1)}}}}, "reached twice"},
		{"nan leaf", &Ensemble{Features: []string{"a"}, Trees: []Tree{{Nodes: []TreeNode{leaf(float32(math.NaN()))}}}}, "leaf 0 value NaN"},
		{"unreachable", &Ensemble{Features: []string{"a"}, Trees: []Tree{{Nodes: []TreeNode{leaf(1), leaf(2)}}}}, "node 1 unreachable"},
		{"empty ensemble", &Ensemble{Features: []string{"a"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildTreeModel(tt.ens)
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

// TestOpenScorer_Trees is must-show 3 for the tree model: its feature list
// is stored with it, and a bundle declaring other features refuses it.
func TestOpenScorer_Trees(t *testing.T) {
	ens := trainedEnsemble(t)
	tests := []struct {
		name string
		want []string
		err  string
	}{
		{"same features", ens.Features, ""},
		{"reordered", []string{"b", "a", "c", "noise"}, "model features [a b c noise] do not match configured features [b a c noise]"},
		{"one missing", []string{"a", "b", "c"}, "do not match configured features [a b c]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := openTrees(t, ens, tt.want)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
	t.Run("empty ensemble scores zero", func(t *testing.T) {
		s, err := openTrees(t, &Ensemble{Features: []string{"a"}}, []string{"a"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.Score(context.Background(), []float32{1, 2, 3}, 3)
		if err != nil || !slices.Equal(got, []float32{0, 0, 0}) {
			t.Fatalf("got %v, %v", got, err)
		}
	})
}

// benchmarkRank200 is must-show 5: ranking 200 candidates end to end, one
// feature-store fetch (MGET) plus assembling the matrix plus one tree-model
// run, as the engine does per request.
func benchmarkRank200(b *testing.B, newClient clientFactory) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.KeyPrefix, cfg.FetchTimeout = "b", 5*time.Second
	client := newClient(b)
	store, err := NewStore(client, cfg, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	itemLen := len(cfg.ItemNames())
	ids, rows := makeRows(10000, itemLen)
	if err := store.WriteItems(ctx, "v1", ids, rows); err != nil {
		b.Fatal(err)
	}
	// The counter updater's state: decayed counts for every item and a
	// 50-action history for the user.
	store.UseRealtime("brt", 72*time.Hour)
	now := time.Now()
	pipe := client.Pipeline()
	for i, id := range ids {
		pipe.Set(ctx, realtime.ItemKey("brt", id), realtime.Format(realtime.Stats{Impressions: float64(100 + i%900), Clicks: float64(i % 50), At: now}), 0)
		if i < 50 {
			pipe.RPush(ctx, realtime.UserKey("brt", "u"), ids[i*7])
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	category := func(id string) string { return "c" + id[len(id)-1:] }
	brand := func(id string) string { return "b" + id[len(id)-2:] }
	// A tree model of serving size over the configured features.
	rng := rand.New(rand.NewPCG(5, 5))
	d := &Dataset{Features: cfg.Names()}
	for range 300 {
		for range 40 {
			row := make([]float32, len(d.Features))
			for j := range row {
				row[j] = rng.Float32()
			}
			d.X = append(d.X, row...)
			d.Labels = append(d.Labels, float32(b32(row[0]+row[2]*row[3] > 0.9)+b32(row[0] > 0.8)))
		}
		d.Groups = append(d.Groups, 40)
	}
	lc := DefaultLambdaMARTConfig()
	lc.Trees, lc.EarlyStopping = 200, 0
	ens, _, err := TrainLambdaMART(ctx, lc, d)
	if err != nil {
		b.Fatal(err)
	}
	s, err := openTrees(b, ens, cfg.Names())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	const n = 200
	layout := NewLayout(cfg)
	ask := make([]string, n)
	for i := range ask {
		ask[i] = ids[(i*37)%len(ids)]
	}
	itemRows := make([]float32, n*itemLen)
	x := make([]float32, n*layout.Len())
	defaults := cfg.ItemDefaults()
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		// As the engine does: item rows and real-time state at once.
		var rt Realtime
		var rtErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			rt, rtErr = store.FetchRealtime(ctx, start, "u", ask, true)
		}()
		if _, err := store.Fetch(ctx, "v1", ask, itemRows, defaults); err != nil {
			b.Fatal(err)
		}
		<-done
		if rtErr != nil {
			b.Fatal(rtErr)
		}
		cats, brands := make([]string, len(rt.History)), make([]string, len(rt.History))
		for i, id := range rt.History {
			cats[i], brands[i] = category(id), brand(id)
		}
		profile := NewUserProfile(cats, brands, nil)
		f := layout.Len()
		for i := range n {
			row := x[i*f : (i+1)*f]
			layout.Fill(row, itemRows[i*itemLen:(i+1)*itemLen], Retrieval{Score: 1 / float32(i+1), Rank: i})
			layout.FillCounters(row, rt.Items[i].Impressions, rt.Items[i].Clicks)
			layout.FillUser(row, profile, category(ask[i]), brand(ask[i]), nil)
		}
		if _, err := s.Score(ctx, x, n); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(len(ens.Trees)), "trees")
}

// BenchmarkRank200 measures ranking 200 candidates end to end with a trained
// tree model over every configured feature: item rows (one MGET) and the
// real-time counts and user history (one pipeline) fetched at once, the
// matrix assembled, and ONNX Runtime scoring; against the embedded server
// and a real redis-server.
func BenchmarkRank200(b *testing.B) {
	b.Run("embedded", func(b *testing.B) { benchmarkRank200(b, embeddedRedis) })
	b.Run("redis-server", func(b *testing.B) { benchmarkRank200(b, realRedis) })
}
