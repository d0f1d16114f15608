package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/internal/onnxpb"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
)

// toyBERT is a stand-in for a BERT export with the same input and output
// names, types and shapes: hidden = word[input_ids] + type[token_type_ids]
// + attention_mask*maskVec. Padding rows are non-zero, so a pooling that
// ignored the mask would change with the batch, and the mask term checks
// the mask reaches the model.
type toyBERT struct {
	vocab               []string
	hidden              int
	word, typ, maskVec  []float32
	withTypeIDs, output bool
}

func newToyBERT(withTypeIDs bool) *toyBERT {
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "quick", "brown", "fox", "jump",
		"##s", "over", "lazy", "dog", ".", ",", "cafe", "un", "##aff", "##able", "中"}
	rng := rand.New(rand.NewPCG(7, 11))
	m := &toyBERT{vocab: vocab, hidden: 6, withTypeIDs: withTypeIDs, output: true}
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	m.word, m.typ, m.maskVec = fill(len(vocab)*m.hidden), fill(2*m.hidden), fill(m.hidden)
	return m
}

func (m *toyBERT) model(t testing.TB) []byte {
	t.Helper()
	g := onnxpb.NewGraph("toy_bert")
	batch, seq := onnxpb.Dynamic("batch"), onnxpb.Dynamic("sequence")
	g.Input(BERTInputIDs, onnxpb.Int64, batch, seq)
	g.Input(BERTAttentionMask, onnxpb.Int64, batch, seq)
	if m.withTypeIDs {
		g.Input(BERTTokenTypeIDs, onnxpb.Int64, batch, seq)
	}
	if m.output {
		g.Output(BERTOutput, onnxpb.Float, batch, seq, onnxpb.Fixed(int64(m.hidden)))
	} else {
		g.Output("pooled", onnxpb.Float, batch, seq, onnxpb.Fixed(int64(m.hidden)))
	}
	h := int64(m.hidden)
	g.Initializer("word", []int64{int64(len(m.vocab)), h}, m.word)
	g.Initializer("mask_vec", []int64{h}, m.maskVec)
	g.InitializerInt64("last_axis", []int64{1}, []int64{-1})
	g.Node("Gather", []string{"word", BERTInputIDs}, []string{"we"}, onnxpb.AttrInt("axis", 0))
	g.Node("Cast", []string{BERTAttentionMask}, []string{"maskf"}, onnxpb.AttrInt("to", int64(onnxpb.Float)))
	g.Node("Unsqueeze", []string{"maskf", "last_axis"}, []string{"mask3"})
	g.Node("Mul", []string{"mask3", "mask_vec"}, []string{"me"})
	g.Node("Add", []string{"we", "me"}, []string{"wm"})
	out := BERTOutput
	if !m.output {
		out = "pooled"
	}
	if m.withTypeIDs {
		g.Initializer("type", []int64{2, h}, m.typ)
		g.Node("Gather", []string{"type", BERTTokenTypeIDs}, []string{"te"}, onnxpb.AttrInt("axis", 0))
		g.Node("Add", []string{"wm", "te"}, []string{out})
	} else {
		g.Node("Identity", []string{"wm"}, []string{out})
	}
	data, err := (&onnxpb.Model{ProducerName: "recsys-test", Graph: g}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// files writes the model and vocabulary and returns a config naming them.
func (m *toyBERT) files(t testing.TB, maxLen int) BERTConfig {
	t.Helper()
	dir := t.TempDir()
	cfg := BERTConfig{ModelPath: filepath.Join(dir, "model.onnx"), VocabPath: filepath.Join(dir, "vocab.txt"), MaxLen: maxLen}
	if err := os.WriteFile(cfg.ModelPath, m.model(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.VocabPath, []byte(strings.Join(m.vocab, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// reference is the toy model plus pooling written out in float64.
func (m *toyBERT) reference(tok *WordPiece, text string, maxLen int) []float32 {
	ids := tok.Encode(text, maxLen)
	acc := make([]float64, m.hidden)
	for _, id := range ids {
		for j := range acc {
			v := float64(m.word[int(id)*m.hidden+j]) + float64(m.maskVec[j])
			if m.withTypeIDs {
				v += float64(m.typ[j])
			}
			acc[j] += v / float64(len(ids))
		}
	}
	var ss float64
	for _, x := range acc {
		ss += x * x
	}
	out := make([]float32, m.hidden)
	for j := range acc {
		out[j] = float32(acc[j] / math.Sqrt(ss))
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

var bertTexts = []string{
	"the quick brown fox jumps over the lazy dog.",
	"fox",
	"Café, UNAFFABLE dog",
	"",
	"中中 the the the the the the the the the the the the the the the the the the the the the",
	"zebra",
}

func TestBERT_Encode(t *testing.T) {
	orttest.Init(t)
	ctx := context.Background()
	for _, withTypes := range []bool{true, false} {
		name := map[bool]string{true: "with token_type_ids", false: "without token_type_ids"}[withTypes]
		t.Run(name, func(t *testing.T) {
			m := newToyBERT(withTypes)
			const maxLen = 12 // truncates the long text
			enc, err := OpenBERT(ctx, m.files(t, maxLen), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			if enc.Dim() != m.hidden {
				t.Fatalf("Dim = %d, want %d", enc.Dim(), m.hidden)
			}
			batch, err := enc.Encode(ctx, bertTexts)
			if err != nil {
				t.Fatal(err)
			}
			all, err := (&BERT{pool: enc.pool, tok: enc.tok, dim: enc.dim, maxLen: enc.maxLen, batchSize: 2,
				typeIDs: enc.typeIDs}).EncodeAll(ctx, bertTexts, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, text := range bertTexts {
				want := m.reference(enc.Tokenizer(), text, maxLen)
				alone, err := enc.Encode(ctx, []string{text})
				if err != nil {
					t.Fatal(err)
				}
				for what, got := range map[string][]float32{"batch": batch[i], "alone": alone[0], "encode all": all[i]} {
					if d := maxAbsDiff(got, want); d > 1e-5 {
						t.Errorf("%q (%s): max diff %g from the reference\n got  %v\n want %v", text, what, d, got, want)
					}
				}
			}
		})
	}
}

func TestOpenBERT_Refuses(t *testing.T) {
	orttest.Init(t)
	ctx := context.Background()
	noOutput := newToyBERT(true)
	noOutput.output = false
	tests := []struct {
		name string
		cfg  func(t *testing.T) BERTConfig
		want string
	}{
		{"missing paths", func(t *testing.T) BERTConfig { return BERTConfig{} }, "model_path: must be set"},
		{"wrong output name", func(t *testing.T) BERTConfig { return noOutput.files(t, 0) }, `no output "last_hidden_state"`},
		{"not a bert model", func(t *testing.T) BERTConfig {
			cfg := newToyBERT(true).files(t, 0)
			data, err := BuildHashedModel(smallModelConfig())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg.ModelPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return cfg
		}, `no input "input_ids"`},
		{"vocab without specials", func(t *testing.T) BERTConfig {
			cfg := newToyBERT(true).files(t, 0)
			if err := os.WriteFile(cfg.VocabPath, []byte("a\nb\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return cfg
		}, "is not in the vocabulary"},
		{"max_len too small", func(t *testing.T) BERTConfig { return newToyBERT(true).files(t, 1) }, "max_len: must be >= 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := OpenBERT(ctx, tt.cfg(t), nil)
			if err == nil {
				enc.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMeanPoolNormalize(t *testing.T) {
	// Two real rows (1,2) and (3,4) and a padding row that must not count:
	// mean (2,3), norm sqrt(13).
	hidden := []float32{1, 2, 3, 4, 100, 100}
	got := make([]float32, 2)
	meanPoolNormalize(got, hidden, 2, 2)
	want := []float32{float32(2 / math.Sqrt(13)), float32(3 / math.Sqrt(13))}
	if d := maxAbsDiff(got, want); d > 1e-7 {
		t.Errorf("got %v, want %v", got, want)
	}
	meanPoolNormalize(got, []float32{0, 0}, 1, 2)
	if got[0] != 0 || got[1] != 0 {
		t.Errorf("zero input gave %v, want zeros", got)
	}
}

func BenchmarkBERT_EncodeToy(b *testing.B) {
	orttest.Init(b)
	m := newToyBERT(true)
	enc, err := OpenBERT(context.Background(), m.files(b, 0), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(context.Background(), bertTexts); err != nil {
			b.Fatal(err)
		}
	}
}
