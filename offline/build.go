package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// FeatureWriter stores a bundle's item features in the serving store.
type FeatureWriter interface {
	WriteItems(ctx context.Context, version string, ids []string, rows [][]float32) error
	MarkReady(ctx context.Context, version string) error
	DeleteVersion(ctx context.Context, version string) error
}

// ItemChanges is the items topic as a build reads it (itemlog.Log).
type ItemChanges interface {
	End(ctx context.Context) (int64, error)
	Replay(ctx context.Context, from, to int64, bad func(int64, error), fn func(itemlog.Change) error) error
}

// BuildOptions are the inputs of one build.
type BuildOptions struct {
	Catalog    string // JSONL or CSV
	BundlesDir string
	Keep       int // published bundles to keep (the current one is always kept)
	Model      embed.ModelConfig
	ModelFile  string // a trained model (recsys train embed --out) to use instead of building Model's
	Encoder    embed.EncoderConfig
	Index      index.Config
	Lexical    index.LexicalConfig
	Rank       rank.Config
	Ranker     string // a promoted ranking model (build.ranker); used when the file exists
	// Hold publishes the bundle without making it CURRENT: the caller
	// checks it first (recsys nightly's smoke queries) and sets CURRENT.
	Hold bool
	// Rules, when set, is the rule set as a rules file holds it (YAML):
	// validated and compiled against the build (a bad one fails it) and
	// stored in the bundle.
	Rules []byte
	// Features, when set, receives the item features at build time; when nil
	// (embedded Redis) the server seeds its store from the bundle at load.
	Features FeatureWriter
	// Items, when set, is the items topic: its changes are folded into the
	// catalog and the bundle records the offset it folded up to, from
	// which servers replay it.
	Items ItemChanges
	// Events, when set, is the event log the recommendation sources are
	// trained from (Sources says how); without it the bundle's
	// recommendations come from content and popularity alone.
	Events   Events
	Sources  SourcesConfig
	Progress io.Writer // human progress lines; nil for none
	Logger   *slog.Logger
	Now      func() time.Time
}

// Build runs the whole pipeline and returns the published manifest.
func Build(ctx context.Context, o BuildOptions) (*bundle.Manifest, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Lexical == (index.LexicalConfig{}) {
		o.Lexical = index.DefaultLexicalConfig() // callers that build options in code
	}
	p := &progress{w: o.Progress}
	// The rules are checked first: a bad set fails the build before an
	// hour of embedding, not after.
	var set *rules.Set
	if o.Rules != nil {
		var err error
		if _, set, err = rules.ParseFile(o.Rules); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	now := o.Now().UTC()

	p.step("read and validate catalog %s", o.Catalog)
	items, err := catalog.ReadFile(o.Catalog)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	sum, err := bundle.SHA256File(o.Catalog)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	p.done("%d items", len(items))
	items, itemsOffset, err := foldItems(ctx, o, items, p)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}

	stage, err := bundle.Create(o.BundlesDir, bundle.NewVersion(now))
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	published := false
	defer func() {
		if !published {
			stage.Abort()
		}
	}()
	m := &bundle.Manifest{CreatedAt: now, CatalogSHA256: sum, CatalogSource: o.Catalog,
		Items: len(items), IndexBackend: o.Index.Backend, Metrics: map[string]float64{}, ItemsOffset: itemsOffset}

	if err := bundle.WriteItems(stage.Path(bundle.ItemsFile), items); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}

	if m.EmbedModel, err = writeEmbedModel(ctx, o, stage.Path(bundle.EmbedFile), p); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}

	p.step("embed %d items", len(items))
	vecs, dim, secs, err := embedItems(ctx, stage.Path(bundle.EmbedFile), o.Encoder, items, p)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	m.Dim = dim
	m.Metrics["embed_items_per_second"] = float64(len(items)) / secs
	p.done("%.0f items/s", float64(len(items))/secs)

	p.step("build %s index", o.Index.Backend)
	ix, err := index.Build(ctx, o.Index, dim, vecs)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if err := ix.WriteFile(stage.Path(bundle.IndexFile)); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	p.done("%d vectors", ix.Len())

	p.step("build lexical index (BM25F over %s)", strings.Join(index.FieldNames[:], ", "))
	start := time.Now()
	lex, err := index.BuildLexical(ctx, o.Lexical, len(items), func(d, f int) string { return index.ItemField(&items[d], f) })
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if err := lex.WriteFile(stage.Path(bundle.LexicalFile)); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	m.Lexical = &bundle.Model{File: bundle.LexicalFile, Kind: KindBM25F,
		Version: fmt.Sprintf("%s-%s", o.Lexical.Stopwords, o.Lexical.Stemmer)}
	m.Metrics["lexical_terms"] = float64(lex.Terms())
	m.Metrics["lexical_build_seconds"] = time.Since(start).Seconds()
	p.done("%d terms", lex.Terms())

	var uses []float32
	if m.Sources, uses, err = trainSources(ctx, o, stage, items, p); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}

	p.step("compute item features")
	dict := rank.NewDict(items)
	rows, err := rank.ItemFeatures(o.Rank, items, dict, now, uses)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if err := bundle.WriteFeatures(stage.Path(bundle.FeaturesFile), rows); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if err := writeJSON(stage.Path(bundle.DictFile), dict); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	m.FeatureNames, m.FeatureDefaults, m.ItemFeatureNames = o.Rank.Names(), o.Rank.Defaults(), o.Rank.ItemNames()
	p.done("%d features per item", len(m.ItemFeatureNames))

	p.step("write ranker")
	ranker, err := buildRanker(o, m.FeatureNames)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if err := atomicfile.WriteBytes(stage.Path(bundle.RankerFile), ranker.data); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	m.Ranker = bundle.Model{File: bundle.RankerFile, Kind: ranker.kind, Version: shortHash(ranker.data)}
	p.done("%s from %s, %d features", ranker.kind, ranker.from, len(m.FeatureNames))

	if o.Features != nil {
		p.step("write item features to the feature store")
		ids := make([]string, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		if err := o.Features.WriteItems(ctx, stage.Version, ids, rows); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		if err := o.Features.MarkReady(ctx, stage.Version); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		p.done("%d rows", len(rows))
	}

	if o.Rules != nil {
		p.step("store the rules")
		if err := atomicfile.WriteBytes(stage.Path(bundle.RulesFile), o.Rules); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		m.Rules = &bundle.Model{File: bundle.RulesFile, Kind: "rules", Version: shortHash(o.Rules)}
		filters, business := set.Len()
		p.done("%d filter and %d business rules, version %s", filters, business, m.Rules.Version)
	}

	p.step("publish bundle %s", stage.Version)
	dir, err := stage.Publish(m, !o.Hold)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	published = true
	p.done("%s", dir)
	o.Logger.Info("bundle published", "version", m.Version, "dir", dir, "items", m.Items)

	removed, err := bundle.Prune(o.BundlesDir, o.Keep)
	if err != nil {
		o.Logger.Warn("prune old bundles", "error", err)
	}
	for _, v := range removed {
		if o.Features != nil {
			if err := o.Features.DeleteVersion(ctx, v); err != nil {
				o.Logger.Warn("delete retired features", "version", v, "error", err)
			}
		}
		o.Logger.Info("retired bundle", "version", v)
	}
	return m, nil
}

// Embedding model kinds recorded in the manifest.
const (
	KindBM25F            = "bm25f"
	KindHashedBag        = "hashed-ngram-bag"
	KindTrainedHashedBag = "hashed-ngram-bag-trained"
)

// writeEmbedModel puts the embedding model at path: the trained model of
// o.ModelFile when set, else the untrained model of o.Model. A model file
// is not trusted here: the embedding step opens it like serving does, so
// one without valid featurizer metadata fails the build before publish.
func writeEmbedModel(ctx context.Context, o BuildOptions, path string, p *progress) (bundle.Model, error) {
	if o.ModelFile == "" {
		p.step("write embedding model")
		model, err := embed.BuildHashedModel(o.Model)
		if err != nil {
			return bundle.Model{}, err
		}
		if err := atomicfile.WriteBytes(path, model); err != nil {
			return bundle.Model{}, err
		}
		p.done("%d bytes", len(model))
		return bundle.Model{File: bundle.EmbedFile, Kind: KindHashedBag, Version: shortHash(model)}, nil
	}
	p.step("copy trained embedding model %s", o.ModelFile)
	if err := ctx.Err(); err != nil {
		return bundle.Model{}, err
	}
	model, err := os.ReadFile(o.ModelFile)
	if err != nil {
		return bundle.Model{}, fmt.Errorf("embed.model_file: %w", err)
	}
	if err := atomicfile.WriteBytes(path, model); err != nil {
		return bundle.Model{}, err
	}
	// Open it as serving will, so a file without the featurizer metadata
	// (or with a featurizer this build does not know) is refused with the
	// key that named it rather than deep in the embedding step.
	enc, err := embed.Open(embed.EncoderConfig{ModelPath: path, Sessions: 1}, nil)
	if err != nil {
		return bundle.Model{}, fmt.Errorf("embed.model_file %s: %w", o.ModelFile, err)
	}
	fc, dim := enc.Featurizer().Config(), enc.Dim()
	enc.Close()
	note := ""
	if fc != o.Model.Featurizer || dim != o.Model.Dim {
		note = "; differs from embed.model, the file's own featurizer is used"
	}
	p.done("%d bytes, dim %d, %d buckets%s", len(model), dim, fc.Buckets, note)
	// The version is the content hash, so two bundles with the same trained
	// model say so and a retrained model never shares a version.
	return bundle.Model{File: bundle.EmbedFile, Kind: KindTrainedHashedBag, Version: shortHash(model)}, nil
}

func embedItems(ctx context.Context, modelPath string, cfg embed.EncoderConfig, items []catalog.Item, p *progress) ([]float32, int, float64, error) {
	cfg.ModelPath = modelPath
	enc, err := embed.Open(cfg, nil)
	if err != nil {
		return nil, 0, 0, err
	}
	defer enc.Close()
	texts := make([]string, len(items))
	for i := range items {
		texts[i] = items[i].Text()
	}
	start := time.Now()
	out, err := enc.EncodeAll(ctx, texts, p.bar)
	if err != nil {
		return nil, 0, 0, err
	}
	secs := math.Max(time.Since(start).Seconds(), 1e-9)
	dim := enc.Dim()
	flat := make([]float32, 0, len(out)*dim)
	for i, v := range out {
		if len(v) != dim {
			return nil, 0, 0, fmt.Errorf("embed item %d: got %d dims, want %d", i, len(v), dim)
		}
		flat = append(flat, v...)
	}
	return flat, dim, secs, nil
}

func writeJSON(path string, v any) error {
	return atomicfile.Write(path, func(w io.Writer) error { return json.NewEncoder(w).Encode(v) })
}

// foldItems applies the items topic's changes to the catalog read from
// the file. A topic that cannot be read leaves the catalog as the file has
// it and the offset unset, so servers replay the whole topic: the changes
// still reach them, only later.
func foldItems(ctx context.Context, o BuildOptions, items []catalog.Item, p *progress) ([]catalog.Item, *int64, error) {
	if o.Items == nil {
		return items, nil, nil
	}
	p.step("fold the items topic into the catalog")
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	end, err := o.Items.End(ectx)
	cancel()
	if errors.Is(err, itemlog.ErrNoTopic) {
		var zero int64
		p.done("no items topic yet: nothing to fold")
		return items, &zero, nil
	}
	if err != nil {
		o.Logger.Warn("items topic unreachable: the bundle holds the catalog file as it is, and servers replay the whole topic", "error", err)
		p.done("skipped: items topic unreachable")
		return items, nil, nil
	}
	var changes []itemlog.Change
	invalid := 0
	err = o.Items.Replay(ctx, 0, end, func(off int64, err error) {
		invalid++
		o.Logger.Warn("skipping an invalid items-topic record", "offset", off, "error", err)
	}, func(c itemlog.Change) error {
		changes = append(changes, c)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fold items topic: %w", err)
	}
	folded := itemlog.Fold(items, changes)
	if err := catalog.Validate(folded); err != nil {
		return nil, nil, fmt.Errorf("catalog with the items topic folded in: %w", err)
	}
	p.done("%d changes up to offset %d (%d invalid skipped): %d items", len(changes), end, invalid, len(folded))
	return folded, &end, nil
}
