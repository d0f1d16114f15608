package rank

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/recsys-dev/recsys/internal/onnxpb"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
)

func writeScorerModel(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ranker.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openLinear(t testing.TB, features []string, weights []float32, bias float32) *Scorer {
	t.Helper()
	orttest.Init(t)
	data, err := BuildLinearModel(features, weights, bias)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenScorer(ScorerConfig{ModelPath: writeScorerModel(t, data), Sessions: 2}, features)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestScorer_Score(t *testing.T) {
	features := []string{"retrieval_score", "ctr", "price", "age_days", "brand_id"}
	rng := rand.New(rand.NewPCG(1, 2))
	weights := make([]float32, len(features))
	for i := range weights {
		weights[i] = float32(rng.NormFloat64())
	}
	const bias = 0.25
	s := openLinear(t, features, weights, bias)

	if got := s.Features(); strings.Join(got, ",") != strings.Join(features, ",") {
		t.Fatalf("Features = %v", got)
	}
	for _, n := range []int{1, 7, 300} {
		x := make([]float32, n*len(features))
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 10)
		}
		got, err := s.Score(context.Background(), x, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("n=%d: %d scores", n, len(got))
		}
		for r := 0; r < n; r++ {
			want := float64(bias)
			for j, w := range weights {
				want += float64(w) * float64(x[r*len(features)+j])
			}
			if math.Abs(float64(got[r])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("n=%d row %d: onnx %v, go %v", n, r, got[r], want)
			}
		}
	}
	t.Run("no candidates", func(t *testing.T) {
		got, err := s.Score(context.Background(), nil, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("wrong matrix size", func(t *testing.T) {
		_, err := s.Score(context.Background(), make([]float32, 7), 2)
		if err == nil || !strings.Contains(err.Error(), "7 values for 2 candidates of 5 features") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Score(ctx, make([]float32, 5), 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				x := make([]float32, len(features))
				x[g%len(features)] = 1
				for r := 0; r < 20; r++ {
					got, err := s.Score(context.Background(), x, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if want := weights[g%len(features)] + bias; math.Abs(float64(got[0]-want)) > 1e-6 {
						t.Errorf("got %v, want %v", got[0], want)
						return
					}
				}
			}(g)
		}
		wg.Wait()
	})
}

// A ranker returning [n,1], as tree ensembles do, is served too.
func TestScorer_ColumnOutput(t *testing.T) {
	orttest.Init(t)
	features := []string{"a", "b"}
	meta, err := ModelMetadata("test.column", features)
	if err != nil {
		t.Fatal(err)
	}
	g := onnxpb.NewGraph("column")
	g.Input("x", onnxpb.Float, onnxpb.Dynamic("n"), onnxpb.Fixed(2))
	g.Output("y", onnxpb.Float, onnxpb.Dynamic("n"), onnxpb.Fixed(1))
	g.Initializer("w", []int64{2, 1}, []float32{2, -1})
	g.Node("MatMul", []string{"x", "w"}, []string{"y"})
	data, err := (&onnxpb.Model{Graph: g, Metadata: meta}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenScorer(ScorerConfig{ModelPath: writeScorerModel(t, data)}, features)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Score(context.Background(), []float32{1, 1, 3, 0.5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 5.5 {
		t.Fatalf("scores = %v, want [1 5.5]", got)
	}
}

func TestOpenScorer(t *testing.T) {
	orttest.Init(t)
	linear, err := BuildLinearModel([]string{"ctr", "price"}, []float32{1, 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	noMeta := func() []byte {
		g := onnxpb.NewGraph("plain")
		g.Input("x", onnxpb.Float, onnxpb.Dynamic("n"), onnxpb.Fixed(2))
		g.Output("y", onnxpb.Float, onnxpb.Dynamic("n"), onnxpb.Fixed(2))
		g.Node("Relu", []string{"x"}, []string{"y"})
		b, err := (&onnxpb.Model{Graph: g}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	tests := []struct {
		name string
		cfg  ScorerConfig
		want []string
		err  string
	}{
		{"no path", ScorerConfig{}, []string{"ctr"}, "model_path: must be set"},
		{"negative sessions", ScorerConfig{ModelPath: "m", Sessions: -1}, []string{"ctr"}, "sessions: must be >= 0"},
		{"missing file", ScorerConfig{ModelPath: filepath.Join(t.TempDir(), "none.onnx")}, []string{"ctr"}, "no such file"},
		{"bad model bytes", ScorerConfig{ModelPath: writeScorerModel(t, []byte("\x08\x01garbage"))}, []string{"ctr"}, "read model"},
		{
			"features differ",
			ScorerConfig{ModelPath: writeScorerModel(t, linear)}, []string{"price", "ctr"},
			"model features [ctr price] do not match configured features [price ctr]",
		},
		{
			"feature missing",
			ScorerConfig{ModelPath: writeScorerModel(t, linear)}, []string{"ctr"},
			"model features [ctr price] do not match configured features [ctr]",
		},
		{"no feature metadata", ScorerConfig{ModelPath: writeScorerModel(t, noMeta)}, []string{"a", "b"}, `no "recsys.rank.features" metadata`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenScorer(tt.cfg, tt.want)
			if err == nil {
				s.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}
}

// BenchmarkScoreLinear200 scores a search's 200 candidates of 32 features
// with the linear ranker as served (one ONNX Runtime run).
func BenchmarkScoreLinear200(b *testing.B) {
	const n, f = 200, 32
	features := make([]string, f)
	weights := make([]float32, f)
	for i := range features {
		features[i] = fmt.Sprintf("f%d", i)
		weights[i] = float32(i) / f
	}
	s := openLinear(b, features, weights, 0.5)
	x := make([]float32, n*f)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Score(context.Background(), x, n); err != nil {
			b.Fatal(err)
		}
	}
}
