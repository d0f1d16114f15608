package embedtrain

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
)

// parityTexts returns n varied texts: catalog-like titles, long
// descriptions, accents, digits, punctuation, and texts without features.
func parityTexts(n int) []string {
	rng := rand.New(rand.NewPCG(21, 22))
	words := strings.Fields("wireless noise cancelling headphones café crème brûlée 4K HDR TV kids' t-shirt " +
		"organic olive oil 1L running shoes Ångström naïve straße москва 東京 héavy-metal guitar strings " +
		"protein powder vanilla 2.5kg the a of and for with")
	out := []string{"", "!!!", "   ", strings.Repeat("long ", 400)}
	for len(out) < n {
		k := 1 + rng.IntN(40)
		parts := make([]string, k)
		for i := range parts {
			parts[i] = words[rng.IntN(len(words))]
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// TestModel_Export_Parity trains a model, exports it to ONNX and checks
// that ONNX Runtime's embeddings equal the Go forward pass within 1e-5 on
// 1,000 texts: serving sees the model training evaluated.
func TestModel_Export_Parity(t *testing.T) {
	orttest.Init(t)
	cfg := embed.DefaultModelConfig()
	cfg.Featurizer.Buckets = 1 << 14
	cfg.BagDim, cfg.Dim = 48, 32
	m, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Trained weights, not the random initial ones, so the test covers
	// what Train changes.
	if err := Train(context.Background(), m, synthPairs(300, 8), Config{Epochs: 2, BatchSize: 32, Seed: 2}, nil); err != nil {
		t.Fatal(err)
	}
	data, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := embed.Open(embed.EncoderConfig{ModelPath: path, BatchSize: 50}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	texts := parityTexts(1000)
	got, err := enc.EncodeAll(context.Background(), texts, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.EmbedAll(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range texts {
		for k := range want[i] {
			d := math.Abs(float64(got[i][k]) - float64(want[i][k]))
			worst = max(worst, d)
			if d > 1e-5 {
				t.Fatalf("text %d %.40q: dim %d: onnx %g, go %g", i, texts[i], k, got[i][k], want[i][k])
			}
		}
	}
	t.Logf("1000 texts, largest difference %.2g", worst)
}
