package offline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/world"
)

// recordingWriter is a FeatureWriter that remembers what it was given.
type recordingWriter struct {
	mu      sync.Mutex
	rows    map[string]int // version -> rows written
	ready   []string
	deleted []string
	fail    error
}

func (w *recordingWriter) WriteItems(_ context.Context, version string, ids []string, rows [][]float32) error {
	if w.fail != nil {
		return w.fail
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rows == nil {
		w.rows = map[string]int{}
	}
	w.rows[version] += len(rows)
	return nil
}
func (w *recordingWriter) MarkReady(_ context.Context, v string) error {
	w.ready = append(w.ready, v)
	return nil
}
func (w *recordingWriter) DeleteVersion(_ context.Context, v string) error {
	w.deleted = append(w.deleted, v)
	return nil
}

func options(t *testing.T, catalogPath, root string) BuildOptions {
	t.Helper()
	model := embed.DefaultModelConfig()
	model.Featurizer.Buckets = 1 << 12 // a small model keeps the test fast
	model.BagDim, model.Dim = 32, 32
	return BuildOptions{Catalog: catalogPath, BundlesDir: root, Keep: 2, Model: model,
		Encoder: embed.EncoderConfig{Sessions: 2, BatchSize: 32}, Index: index.Config{Backend: index.BackendExact},
		Rank: rank.DefaultConfig()}
}

func writeWorld(t *testing.T, items int) string {
	t.Helper()
	dir := t.TempDir()
	if err := world.Write(dir, world.Config{Items: items, Users: 10, Seed: 5}, io.Discard); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, world.CatalogFile)
}

func TestBuild_Publishes(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	root := t.TempDir()
	w := &recordingWriter{}
	var progress bytes.Buffer
	o := options(t, cat, root)
	o.Features, o.Progress = w, &progress
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, m.Version)
	got, err := bundle.Open(dir) // verifies every checksum
	if err != nil {
		t.Fatal(err)
	}
	if got.Items != 1000 || got.Dim != 32 || got.IndexBackend != "exact" || got.CatalogSHA256 == "" {
		t.Fatalf("manifest = %+v", got)
	}
	if !slices.Equal(got.FeatureNames, rank.DefaultConfig().Names()) || len(got.FeatureDefaults) != len(got.FeatureNames) {
		t.Fatalf("features %v defaults %v", got.FeatureNames, got.FeatureDefaults)
	}
	for _, f := range []string{bundle.ItemsFile, bundle.EmbedFile, bundle.IndexFile, bundle.RankerFile, bundle.FeaturesFile, bundle.DictFile} {
		if _, ok := got.File(f); !ok {
			t.Errorf("bundle lacks %s", f)
		}
	}
	if cur, _ := bundle.Current(root); cur != m.Version {
		t.Fatalf("CURRENT = %q, want %q", cur, m.Version)
	}
	if w.rows[m.Version] != 1000 || !slices.Equal(w.ready, []string{m.Version}) {
		t.Fatalf("feature writer got rows %v ready %v", w.rows, w.ready)
	}
	rows, err := bundle.ReadFeatureRows(dir, got)
	if err != nil || len(rows) != 1000 || len(rows[0]) != len(got.ItemFeatureNames) {
		t.Fatalf("feature rows: %d, %v", len(rows), err)
	}
	ix, err := index.LoadExact(filepath.Join(dir, bundle.IndexFile))
	if err != nil || ix.Len() != 1000 {
		t.Fatalf("index: %v", err)
	}
	if !strings.Contains(progress.String(), "embed 1000 items") || !strings.Contains(progress.String(), "1000/1000 (100%)") {
		t.Errorf("progress output:\n%s", progress.String())
	}
	if m.Metrics["embed_items_per_second"] <= 0 {
		t.Errorf("metrics = %v", m.Metrics)
	}
}

func TestBuild_RefusesAndLeavesNothing(t *testing.T) {
	orttest.Init(t)
	good := writeWorld(t, 1000)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	b, _ := os.ReadFile(good)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines[2] = strings.Replace(lines[2], `"price":`, `"price":-`, 1)
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)

	cases := []struct {
		name    string
		catalog string
		writer  *recordingWriter
		want    string
	}{
		{"invalid catalog", bad, nil, "line 3"},
		{"missing catalog", filepath.Join(t.TempDir(), "none.jsonl"), nil, "no such file"},
		{"feature store fails", good, &recordingWriter{fail: errors.New("redis down")}, "redis down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			o := options(t, tc.catalog, root)
			if tc.writer != nil {
				o.Features = tc.writer
			}
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.name == "invalid catalog" {
				var ve *catalog.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err is not a validation error: %T", err)
				}
			}
			entries, _ := os.ReadDir(root)
			if len(entries) != 0 {
				t.Fatalf("a failed build left %v behind", entries)
			}
		})
	}
}

func TestBuild_PrunesAndRetiresFeatures(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	root := t.TempDir()
	w := &recordingWriter{}
	var versions []string
	for i := 0; i < 3; i++ {
		o := options(t, cat, root)
		o.Features = w
		base := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		o.Now = func() time.Time { return base }
		m, err := Build(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, m.Version)
	}
	left, _ := bundle.Versions(root)
	if !slices.Equal(left, versions[1:]) {
		t.Fatalf("kept %v, want %v", left, versions[1:])
	}
	if !slices.Equal(w.deleted, versions[:1]) {
		t.Fatalf("retired feature versions %v, want %v", w.deleted, versions[:1])
	}
}
