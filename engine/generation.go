package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// Index is the retrieval structure a generation searches.
type Index interface {
	Search(q []float32, k int, filter index.Filter) []index.Hit
	Vector(id int32) []float32
	Len() int
}

// Encoder embeds texts with the generation's embedding model.
type Encoder interface {
	Encode(ctx context.Context, texts []string) ([][]float32, error)
	Featurizer() *embed.Featurizer
	Close() error
}

// Scorer scores a row-major candidate feature matrix.
type Scorer interface {
	Score(ctx context.Context, x []float32, n int) ([]float32, error)
	// Explain splits the score of one row into a base and per-feature
	// contributions (rank.Scorer.Explain).
	Explain(row []float32) (method string, base float32, phi []float32, err error)
	Close() error
}

// Generation is one loaded bundle. It is immutable once published.
type Generation struct {
	Manifest *bundle.Manifest
	Dir      string

	items   []catalog.Item
	byID    map[string]int32
	popular []int32   // item ids by descending popularity, for cold-start users
	newest  []int32   // item ids by descending creation time (the fresh source)
	uses    []float32 // decayed interactions per item from the build's event log (nil: none)
	collab            // the collaborative sources
	index   Index
	lexical *index.Lexical // nil for a bundle built before the lexical index
	encoder Encoder
	scorer  Scorer
	// filter is the engine's filter rules bound to items, remembering
	// their verdicts for this catalog (nil: no rules).
	// filter is the live rules bound to items (swapped when the rules
	// are reloaded).
	filter atomic.Pointer[rules.Bound]
	// counters caches the items' real-time counters (nil: off).
	counters *counterCache
	// cols are the attributes request filters read, by item number.
	cols *columns

	// layout assembles ranker vectors in the bundle's feature order;
	// itemDefaults fill store rows that are missing.
	layout       rank.Layout
	itemDefaults []float32
	// itemRows are the bundle's item feature rows, items x ItemLen, when
	// the engine has no feature store.
	itemRows []float32

	// live is the catalog with the items topic's changes applied (never
	// nil once opened); writer is the applier's state behind it.
	live   atomic.Pointer[view]
	writer *liveWriter

	// unseeded: the feature store does not hold (or may have lost) this
	// generation's item features; Run re-seeds it.
	unseeded atomic.Bool

	refs atomic.Int64
	// loadTimes are the load phases' durations, logged once it serves.
	loadTimes []any
	retired   atomic.Bool
	once      sync.Once
	drained   chan struct{}
}

// LoadOptions are what opening a generation needs besides the bundle.
type LoadOptions struct {
	Encoder embed.EncoderConfig
	Scorer  rank.ScorerConfig
	// Search, when set, replaces the search settings the HNSW snapshot was
	// built with: they are serving knobs, changed by a reload, not by a
	// rebuild.
	Search *SearchOptions
	// ALSEfSearch is the factor graph's (engine.recommend.als_ef_search).
	ALSEfSearch int
	// Lexical, when set, replaces the BM25F parameters the lexical
	// snapshot was built with (index.lexical k1, b and field weights).
	Lexical *index.LexicalParams
}

// SearchOptions are the HNSW search settings (index.ef_search and
// index.exact_below).
type SearchOptions struct {
	EfSearch   int
	ExactBelow float64
}

// OpenGeneration verifies and loads the bundle in dir. Nothing is shared
// with any other generation, so a failure here leaves the live one intact.
func OpenGeneration(dir string, opts LoadOptions) (g *Generation, err error) {
	t0 := time.Now()
	m, err := bundle.Open(dir)
	if err != nil {
		return nil, err
	}
	g = &Generation{Manifest: m, Dir: dir, drained: make(chan struct{})}
	g.took("verify", &t0)
	// Every error return sets g to nil, so close what was opened through
	// its own pointer.
	opened := g
	defer func() {
		if err != nil {
			opened.close()
		}
	}()
	if g.items, err = catalog.ReadFile(filepath.Join(dir, bundle.ItemsFile)); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	if len(g.items) != m.Items {
		return nil, fmt.Errorf("load bundle %s: %d items, manifest says %d", m.Version, len(g.items), m.Items)
	}
	g.byID = make(map[string]int32, len(g.items))
	for i := range g.items {
		g.byID[g.items[i].ID] = int32(i)
	}
	g.cols = newColumns(g.items)
	g.popular = make([]int32, len(g.items))
	for i := range g.popular {
		g.popular[i] = int32(i)
	}
	if err := g.openSources(dir); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	if g.alsIndex != nil {
		so := opts.Search
		if opts.ALSEfSearch > 0 {
			c := SearchOptions{EfSearch: opts.ALSEfSearch}
			if so != nil {
				c.ExactBelow = so.ExactBelow
			}
			so = &c
		}
		applySearch(g.alsIndex, so)
	}
	g.took("sources", &t0)

	if err := g.openLive(dir, opts); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	g.took("catalog", &t0)
	ix, err := index.Load(filepath.Join(dir, bundle.IndexFile))
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	if ix.Len() != m.Items || ix.Dim() != m.Dim {
		return nil, fmt.Errorf("load bundle %s: index holds %d x %d, manifest says %d x %d", m.Version, ix.Len(), ix.Dim(), m.Items, m.Dim)
	}
	applySearch(ix, opts.Search)
	g.index = ix
	g.took("index", &t0)
	if m.Lexical != nil {
		if g.lexical, err = index.LoadLexical(filepath.Join(dir, m.Lexical.File)); err != nil {
			return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
		}
		if g.lexical.Len() != m.Items {
			return nil, fmt.Errorf("load bundle %s: lexical index holds %d items, manifest says %d", m.Version, g.lexical.Len(), m.Items)
		}
		// The snapshot was tuned to its build's parameters as it loaded;
		// tuning a million items' postings again to the same ones would
		// only cost a second.
		if opts.Lexical != nil && *opts.Lexical != g.lexical.Params() {
			if err := g.lexical.Tune(*opts.Lexical); err != nil {
				return nil, fmt.Errorf("load bundle %s: index.lexical: %w", m.Version, err)
			}
		}
	}

	g.took("lexical", &t0)
	ec := opts.Encoder
	ec.ModelPath = filepath.Join(dir, m.EmbedModel.File)
	enc, err := embed.Open(ec, nil)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	g.encoder = enc
	if enc.Dim() != m.Dim {
		return nil, fmt.Errorf("load bundle %s: embedding model gives dim %d, manifest says %d", m.Version, enc.Dim(), m.Dim)
	}

	sc := opts.Scorer
	sc.ModelPath = filepath.Join(dir, m.Ranker.File)
	scorer, err := rank.OpenScorer(sc, m.FeatureNames)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	g.scorer = scorer

	if g.layout, g.itemDefaults, err = layoutOf(m); err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", m.Version, err)
	}
	g.took("models", &t0)
	return g, nil
}

// took records how long a load phase ran since *t0 (for the "bundle
// loaded" log line) and restarts the clock.
func (g *Generation) took(phase string, t0 *time.Time) {
	g.loadTimes = append(g.loadTimes, slog.Duration(phase, time.Since(*t0).Round(time.Millisecond)))
	*t0 = time.Now()
}

// applySearch sets so on the indexes that have such settings (HNSW, and
// coder-hnsw's ef); nil keeps the snapshot's.
func applySearch(ix any, so *SearchOptions) {
	if so == nil {
		return
	}
	if t, ok := ix.(interface{ SetEfSearch(int) }); ok {
		t.SetEfSearch(so.EfSearch)
	}
	if t, ok := ix.(interface{ SetExactBelow(float64) }); ok {
		t.SetExactBelow(so.ExactBelow)
	}
}

// layoutOf rebuilds the feature specs from the manifest: a feature is an
// item feature when it has a store column, else its name says which source
// computes it. A name no source knows (a bundle from a newer build) is
// refused rather than served as a silent default.
func layoutOf(m *bundle.Manifest) (rank.Layout, []float32, error) {
	isItem := make(map[string]bool, len(m.ItemFeatureNames))
	for _, n := range m.ItemFeatureNames {
		if src, ok := rank.SourceOf(n); !ok || src != rank.SourceItem {
			// The live catalog computes these for every changed item.
			return rank.Layout{}, nil, fmt.Errorf("item feature %q: not an item feature this server computes", n)
		}
		isItem[n] = true
	}
	var cfg rank.Config
	var itemDefaults []float32
	for i, n := range m.FeatureNames {
		spec := rank.FeatureSpec{Name: n, Source: rank.SourceItem, Default: m.FeatureDefaults[i]}
		if isItem[n] {
			itemDefaults = append(itemDefaults, spec.Default)
		} else if src, ok := rank.SourceOf(n); ok && src != rank.SourceItem {
			spec.Source = src
		} else {
			return rank.Layout{}, nil, fmt.Errorf("feature %q: no source computes it (not an item feature of the bundle, not a known request, counter or user feature)", n)
		}
		cfg.Features = append(cfg.Features, spec)
	}
	return rank.NewLayout(cfg), itemDefaults, nil
}

// Version is the bundle version.
func (g *Generation) Version() string { return g.Manifest.Version }

// acquire pins g for one request; it fails if g was retired meanwhile.
func (g *Generation) acquire() bool {
	g.refs.Add(1)
	if g.retired.Load() {
		g.release()
		return false
	}
	return true
}

func (g *Generation) release() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.once.Do(func() { close(g.drained) })
	}
}

// retire marks g as replaced and closes its models once the last request
// holding it has released it.
func (g *Generation) retire() {
	g.retired.Store(true)
	if g.refs.Load() == 0 {
		g.once.Do(func() { close(g.drained) })
	}
	go func() {
		<-g.drained
		g.close()
	}()
}

func (g *Generation) close() {
	// Fields are assigned only after a successful open, so nil means "never opened".
	if g.encoder != nil {
		g.encoder.Close()
	}
	if g.scorer != nil {
		g.scorer.Close()
	}
	// A loaded index may alias its memory-mapped snapshot: unmapping it
	// here, after the last request let go, returns the address space and
	// lets a pruned bundle's file be freed on disk.
	for _, ix := range []Index{g.index, g.alsIndex} {
		if c, ok := ix.(io.Closer); ok {
			if err := c.Close(); err != nil {
				slog.Warn("close the retired bundle's index", "bundle", g.Manifest.Version, "error", err)
			}
		}
	}
}

// featureRows are the bundle's item feature rows, one slice per item: the
// ones in memory when loaded, else read from the features file.
func (g *Generation) featureRows() ([][]float32, error) {
	if g.itemRows == nil {
		return bundle.ReadFeatureRows(g.Dir, g.Manifest)
	}
	f := g.layout.ItemLen()
	rows := make([][]float32, len(g.items))
	for i := range rows {
		rows[i] = g.itemRows[i*f : (i+1)*f : (i+1)*f]
	}
	return rows, nil
}
