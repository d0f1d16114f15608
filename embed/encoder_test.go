package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/recsys-dev/recsys/internal/ort/orttest"
)

// smallModelConfig keeps test models tiny so every test builds its own.
func smallModelConfig() ModelConfig {
	cfg := DefaultModelConfig()
	cfg.Featurizer.Buckets = 4096
	cfg.BagDim = 32
	cfg.Dim = 24
	return cfg
}

func writeModel(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openEncoder(t testing.TB, mc ModelConfig, ec EncoderConfig) *Encoder {
	t.Helper()
	orttest.Init(t)
	data, err := BuildHashedModel(mc)
	if err != nil {
		t.Fatal(err)
	}
	ec.ModelPath = writeModel(t, data)
	enc, err := Open(ec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

// reference is the model's forward pass written out in Go from the same
// parameters: weighted bag of table rows, projection, L2 normalisation.
func reference(mc ModelConfig, f *Featurizer, text string) []float32 {
	table, proj := randomParams(mc)
	ids, w := f.Featurize(text)
	bag := make([]float64, mc.BagDim)
	for i, id := range ids {
		for j := range bag {
			bag[j] += float64(w[i]) * float64(table[int(id)*mc.BagDim+j])
		}
	}
	z := make([]float64, mc.Dim)
	var ss float64
	for k := range z {
		for j := range bag {
			z[k] += bag[j] * float64(proj[j*mc.Dim+k])
		}
		ss += z[k] * z[k]
	}
	norm := math.Sqrt(ss + normEpsilon)
	out := make([]float32, mc.Dim)
	for k := range z {
		out[k] = float32(z[k] / norm)
	}
	return out
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

var sampleTexts = []string{
	"wireless bluetooth headphones",
	"Bluetooth wireless headphone with microphone",
	"organic green tea leaves",
	"",
	"a",
	"Stainless steel chef's knife, 20 cm, with a very long description that goes on and on about forged steel",
}

func TestEncoder_Encode(t *testing.T) {
	mc := smallModelConfig()
	enc := openEncoder(t, mc, EncoderConfig{Sessions: 1})
	if enc.Dim() != mc.Dim {
		t.Fatalf("Dim = %d, want %d", enc.Dim(), mc.Dim)
	}
	if enc.Featurizer().Config() != mc.Featurizer {
		t.Fatalf("featurizer from metadata = %+v, want %+v", enc.Featurizer().Config(), mc.Featurizer)
	}
	got, err := enc.Encode(context.Background(), sampleTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range sampleTexts {
		t.Run(fmt.Sprintf("text %d", i), func(t *testing.T) {
			want := reference(mc, enc.Featurizer(), text)
			if len(got[i]) != mc.Dim {
				t.Fatalf("len = %d", len(got[i]))
			}
			for k := range want {
				if math.Abs(float64(got[i][k]-want[k])) > 1e-5 {
					t.Fatalf("dim %d: onnx %v, go %v", k, got[i][k], want[k])
				}
			}
			n := dot(got[i], got[i])
			switch {
			case text == "":
				if n != 0 {
					t.Fatalf("empty text: squared norm %v, want a zero vector", n)
				}
			case math.Abs(n-1) > 1e-5:
				t.Fatalf("squared norm %v, want 1", n)
			}
		})
	}
	t.Run("no texts", func(t *testing.T) {
		v, err := enc.Encode(context.Background(), nil)
		if err != nil || len(v) != 0 {
			t.Fatalf("got %v, %v", v, err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := enc.Encode(ctx, sampleTexts); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestEncoder_Similarity(t *testing.T) {
	// Default featurizer, narrower table: similarity comes from shared
	// features, and a smaller model keeps the test fast under -race.
	mc := DefaultModelConfig()
	mc.Featurizer.Buckets = 1 << 14
	mc.BagDim, mc.Dim = 64, 64
	enc := openEncoder(t, mc, EncoderConfig{Sessions: 1})
	tests := []struct{ anchor, near, far string }{
		{"wireless bluetooth headphones", "bluetooth headphones wireless", "organic green tea"},
		{"running shoes for men", "men's running shoe", "kitchen knife set"},
		{"chocolate chip cookies", "chocolate cookie recipe", "car battery charger"},
	}
	for _, tt := range tests {
		t.Run(tt.anchor, func(t *testing.T) {
			v, err := enc.Encode(context.Background(), []string{tt.anchor, tt.near, tt.far})
			if err != nil {
				t.Fatal(err)
			}
			near, far := dot(v[0], v[1]), dot(v[0], v[2])
			t.Logf("cos(near) = %.3f, cos(far) = %.3f", near, far)
			if near <= far+0.2 {
				t.Fatalf("cos(near) = %.3f, cos(far) = %.3f: want near clearly above far", near, far)
			}
		})
	}
}

func TestEncoder_EncodeAll(t *testing.T) {
	enc := openEncoder(t, smallModelConfig(), EncoderConfig{Sessions: 2, BatchSize: 3})
	var texts []string
	for i := 0; i < 50; i++ {
		texts = append(texts, strings.Repeat(fmt.Sprintf("item %d word ", i), i%7))
	}
	var calls []int
	got, err := enc.EncodeAll(context.Background(), texts, func(done, total int) {
		if total != len(texts) {
			t.Errorf("total = %d", total)
		}
		calls = append(calls, done) // serialised by EncodeAll
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 17 || calls[len(calls)-1] != len(texts) || !slices.IsSorted(calls) {
		t.Errorf("progress calls %v: want 17 increasing calls ending at %d", calls, len(texts))
	}
	for i, text := range texts {
		one, err := enc.Encode(context.Background(), []string{text})
		if err != nil {
			t.Fatal(err)
		}
		for k := range one[0] {
			if math.Abs(float64(one[0][k]-got[i][k])) > 1e-5 {
				t.Fatalf("text %d dim %d: EncodeAll %v, Encode %v", i, k, got[i][k], one[0][k])
			}
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := enc.EncodeAll(ctx, texts, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestEncoder_Concurrent(t *testing.T) {
	enc := openEncoder(t, smallModelConfig(), EncoderConfig{Sessions: 2})
	want, err := enc.Encode(context.Background(), sampleTexts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 10; r++ {
				i := (g + r) % len(sampleTexts)
				v, err := enc.Encode(context.Background(), []string{sampleTexts[i]})
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(v[0], want[i]) {
					errs <- fmt.Errorf("text %d: concurrent result differs", i)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOpen(t *testing.T) {
	orttest.Init(t)
	mc := smallModelConfig()
	table, proj := randomParams(mc)
	withMeta := func(edit func(m map[string]string)) string {
		m, err := bagModel(mc, table, proj)
		if err != nil {
			t.Fatal(err)
		}
		edit(m.Metadata)
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return writeModel(t, b)
	}
	tests := []struct {
		name string
		cfg  EncoderConfig
		want string
	}{
		{"no model path", EncoderConfig{}, "model_path: must be set"},
		{"negative sessions", EncoderConfig{ModelPath: "x", Sessions: -1}, "sessions: must be >= 0"},
		{"missing file", EncoderConfig{ModelPath: filepath.Join(t.TempDir(), "none.onnx")}, "no such file"},
		{"not a model", EncoderConfig{ModelPath: writeModel(t, []byte("garbage"))}, "read model"},
		{
			"no featurizer metadata",
			EncoderConfig{ModelPath: withMeta(func(m map[string]string) { delete(m, MetaFeaturizer) })},
			`no "recsys.embed.featurizer" metadata`,
		},
		{
			"unknown featurizer field",
			EncoderConfig{ModelPath: withMeta(func(m map[string]string) {
				m[MetaFeaturizer] = strings.Replace(m[MetaFeaturizer], "{", `{"lowercase":false,`, 1)
			})},
			`unknown field "lowercase"`,
		},
		{
			"wrong kind",
			EncoderConfig{ModelPath: withMeta(func(m map[string]string) { m[MetaKind] = "rank.linear" })},
			`model kind "rank.linear"`,
		},
		{
			"bad dim",
			EncoderConfig{ModelPath: withMeta(func(m map[string]string) { m[MetaDim] = "-3" })},
			`"recsys.embed.dim"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := Open(tt.cfg, nil)
			if err == nil {
				enc.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestModelConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *ModelConfig)
		want   string
	}{
		{"default", func(c *ModelConfig) {}, ""},
		{"featurizer error gets a key path", func(c *ModelConfig) { c.Featurizer.Buckets = 0 }, "featurizer.buckets: must be"},
		{"bag dim", func(c *ModelConfig) { c.BagDim = 0 }, "bag_dim: must be > 0"},
		{"dim", func(c *ModelConfig) { c.Dim = -1 }, "dim: must be > 0"},
		{"table too large", func(c *ModelConfig) { c.Featurizer.Buckets, c.BagDim = 1<<24, 128 }, "buckets*bag_dim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultModelConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBuildHashedModel(t *testing.T) {
	t.Run("default size within budget", func(t *testing.T) {
		a, err := BuildHashedModel(DefaultModelConfig())
		if err != nil {
			t.Fatal(err)
		}
		if len(a) > 34<<20 {
			t.Errorf("default model is %d bytes, budget ~32 MB", len(a))
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		a, _ := BuildHashedModel(smallModelConfig())
		b, _ := BuildHashedModel(smallModelConfig())
		if len(a) == 0 || string(a) != string(b) {
			t.Error("two builds with the same config differ")
		}
	})
	t.Run("seed changes the weights", func(t *testing.T) {
		c := smallModelConfig()
		a, _ := BuildHashedModel(c)
		c.Seed++
		b, _ := BuildHashedModel(c)
		if string(a) == string(b) {
			t.Error("different seeds give the same model")
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		c := smallModelConfig()
		c.Dim = 0
		if _, err := BuildHashedModel(c); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("weights of the wrong size", func(t *testing.T) {
		c := smallModelConfig()
		if _, err := BuildBagModel(c, make([]float32, 3), make([]float32, c.BagDim*c.Dim)); err == nil ||
			!strings.Contains(err.Error(), "table has 3 values") {
			t.Fatalf("err = %v", err)
		}
	})
}

func BenchmarkEncoder_Encode(b *testing.B) {
	enc := openEncoder(b, DefaultModelConfig(), EncoderConfig{Sessions: 1})
	q := []string{"waterproof hiking boots"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncoder_EncodeAll(b *testing.B) {
	enc := openEncoder(b, DefaultModelConfig(), EncoderConfig{Sessions: 2, BatchSize: 64})
	texts := make([]string, 1024)
	for i := range texts {
		texts[i] = fmt.Sprintf("Product %d: lightweight trail running shoe with breathable mesh upper, size %d", i, i%15)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncodeAll(ctx, texts, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "items/s")
}
