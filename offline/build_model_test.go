package offline

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/offline/embedtrain"
	"github.com/recsys-dev/recsys/rank"
)

// trainedModel trains a small model on the catalog's own pairs and writes
// it where `recsys train embed --out` would.
func trainedModel(t *testing.T, catalogPath string, cfg embed.ModelConfig) (*embedtrain.Model, string) {
	t.Helper()
	items, err := catalog.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := embedtrain.NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := embedtrain.Train(context.Background(), m, embedtrain.CatalogPairs(items),
		embedtrain.Config{Epochs: 1, BatchSize: 64, Seed: 3}, nil); err != nil {
		t.Fatal(err)
	}
	data, err := m.Export()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trained.onnx")
	if err := atomicfile.WriteBytes(path, data); err != nil {
		t.Fatal(err)
	}
	return m, path
}

// defaultsStore serves every item the bundle defaults: ranking needs a
// store, and this test is about the embedding model.
type defaultsStore struct{}

func (defaultsStore) Fetch(_ context.Context, _ string, ids []string, dst, defaults []float32) (int, error) {
	for i := range ids {
		copy(dst[i*len(defaults):], defaults)
	}
	return 0, nil
}

func newTestEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{Candidates: 20, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 5},
		engine.Deps{Features: defaultsStore{}, Load: engine.LoadOptions{Encoder: embed.EncoderConfig{Sessions: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestBuild_TrainedModelServes builds a bundle from a trained model file
// and checks that the bundle carries that model, that its item vectors are
// the trained model's, and that serving loads it and retrieves with it.
func TestBuild_TrainedModelServes(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	root := t.TempDir()
	o := options(t, cat, root)
	tm, modelPath := trainedModel(t, cat, o.Model)
	o.ModelFile = modelPath
	var progress bytes.Buffer
	o.Progress = &progress
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, m.Version)
	src, _ := os.ReadFile(modelPath)
	got, err := os.ReadFile(filepath.Join(dir, bundle.EmbedFile))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("bundle model differs from %s (err %v)", modelPath, err)
	}
	if m.EmbedModel.Kind != KindTrainedHashedBag || m.EmbedModel.Version != shortHash(src) {
		t.Errorf("manifest embed_model = %+v, want kind %s version %s", m.EmbedModel, KindTrainedHashedBag, shortHash(src))
	}
	if !strings.Contains(progress.String(), "copy trained embedding model") {
		t.Errorf("progress does not name the trained model:\n%s", progress.String())
	}

	items, err := catalog.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	texts := make([]string, len(items))
	for i := range items {
		texts[i] = items[i].Text()
	}
	want, err := tm.EmbedAll(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.LoadExact(filepath.Join(dir, bundle.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		v := ix.Vector(int32(i))
		for k := range v {
			if d := math.Abs(float64(v[k] - want[i][k])); d > 1e-5 {
				t.Fatalf("item %d dim %d: bundle %g, trained model %g", i, k, v[k], want[i][k])
			}
		}
	}

	e := newTestEngine(t)
	if err := e.Load(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	query := items[7].Title
	res, err := e.Search(context.Background(), engine.SearchRequest{Query: query, K: 20})
	if err != nil {
		t.Fatal(err)
	}
	// The served retrieval order is the trained model's own nearest items.
	q := tm.Embed(query)
	best := ix.Search(q, 1, nil)[0]
	var first string
	for _, h := range res.Items {
		if h.RetrievalRank == 1 {
			first = h.ID
		}
	}
	if res.Bundle != m.Version || first != items[best.ID].ID {
		t.Errorf("served bundle %s, retrieval rank 1 %q; want bundle %s, item %q", res.Bundle, first, m.Version, items[best.ID].ID)
	}
}

// tamper returns model with the one occurrence of old replaced by new,
// which must have the same length so the protobuf framing stays valid.
func tamper(t *testing.T, model []byte, old, new string) []byte {
	t.Helper()
	if len(old) != len(new) || bytes.Count(model, []byte(old)) != 1 {
		t.Fatalf("tamper %q -> %q: need equal lengths and exactly one occurrence", old, new)
	}
	return bytes.Replace(model, []byte(old), []byte(new), 1)
}

// TestBuild_RefusesMismatchedModel checks that a model file whose metadata
// does not describe a tokenisation this build can reproduce fails the
// build, and that nothing is published.
func TestBuild_RefusesMismatchedModel(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	o := options(t, cat, "")
	_, good := trainedModel(t, cat, o.Model)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	ranker, err := rank.BuildLinearModel([]string{"a", "b"}, []float32{1, 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "model.onnx")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		model string
		want  string
	}{
		// A featurizer field this build does not know would tokenise
		// differently from training in a way it cannot reproduce.
		{"unknown featurizer field", write(tamper(t, data, `"seed":`, `"salt":`)), `unknown field "salt"`},
		{"featurizer invalid", write(tamper(t, data, `"min_n":3`, `"min_n":9`)), "min_n"},
		// Metadata claiming more buckets than the table has rows: ONNX
		// Runtime refuses the out-of-range ids while embedding.
		{"buckets beyond the table", write(tamper(t, data, `"buckets":4096`, `"buckets":8192`)), "out of data bounds"},
		{"not an embedding model", write(ranker), "embed.model_file"},
		{"missing file", filepath.Join(t.TempDir(), "none.onnx"), "embed.model_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			o := options(t, cat, root)
			o.ModelFile = tc.model
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("a refused build left %v behind", entries)
			}
		})
	}
}

// TestLoad_RefusesMismatchedModel publishes a bundle, checksums and all,
// whose embedding model carries featurizer metadata this build does not
// know: serving must refuse it and keep the bundle it has.
func TestLoad_RefusesMismatchedModel(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	root := t.TempDir()
	o := options(t, cat, root)
	_, modelPath := trainedModel(t, cat, o.Model)
	o.ModelFile = modelPath
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t)
	if err := e.Load(context.Background(), filepath.Join(root, m.Version)); err != nil {
		t.Fatal(err)
	}

	stage, err := bundle.Create(root, "v-tampered")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(root, m.Version, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == bundle.EmbedFile {
			b = tamper(t, b, `"seed":`, `"salt":`)
		}
		if err := os.WriteFile(stage.Path(f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m2 := *m
	dir, err := stage.Publish(&m2, false)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Load(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "recsys.embed.featurizer") {
		t.Fatalf("load of a model with unknown featurizer metadata: err = %v", err)
	}
	if e.Current() != m.Version {
		t.Errorf("serving %q after the refused load, want %q", e.Current(), m.Version)
	}
}
