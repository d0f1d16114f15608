package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// Config tunes the online pipeline.
type Config struct {
	// Candidates is how many items retrieval hands to ranking (at least k).
	Candidates int `yaml:"candidates"`
	// RankTimeout bounds scoring; past it retrieval order is served.
	RankTimeout time.Duration `yaml:"rank_timeout"`
	// RecentDecay weighs the i-th most recent item by RecentDecay^i when a
	// user vector is built from recent items.
	RecentDecay float64 `yaml:"recent_decay"`
	// MaxRecent is how many recent items a user vector uses at most.
	MaxRecent int `yaml:"max_recent"`
	// QueryCacheSize bounds the cache of query embeddings (entries).
	QueryCacheSize int `yaml:"query_cache_size"`
	// ExploreRate is the fraction of requests whose top k is shown in a
	// uniformly random order (result randomization). Their impressions are
	// marked explore, and `recsys train rank` estimates from them how much
	// position alone draws clicks. It costs those requests their ranking.
	ExploreRate float64 `yaml:"explore_rate"`
	// Retrieval chooses and merges the candidate sources of text queries.
	Retrieval RetrievalConfig `yaml:"retrieval"`
	// Recommend chooses and merges the candidate sources of
	// recommendations.
	Recommend RecommendConfig `yaml:"recommend"`
	// SeedCheck is how often the live bundle's ready marker in the feature
	// store is checked, so features lost with a Redis restart are written
	// again without a reload. 0 means 1s.
	SeedCheck time.Duration `yaml:"seed_check"`
	// Live tunes the application of item changes between rebuilds.
	Live LiveConfig `yaml:"live"`
	// CounterCache is how long items' real-time counters read from Redis
	// answer later requests from process memory; 0 reads them every
	// request. It bounds how stale a counter feature can be.
	CounterCache time.Duration `yaml:"counter_cache"`
}

// Validate reports every bad value with its key.
func (c Config) Validate() error {
	var errs []error
	if c.Candidates < 1 || c.Candidates > 10000 {
		errs = append(errs, fmt.Errorf("candidates: must be in 1..10000, got %d", c.Candidates))
	}
	if c.RankTimeout <= 0 {
		errs = append(errs, fmt.Errorf("rank_timeout: must be > 0"))
	}
	if c.RecentDecay <= 0 || c.RecentDecay > 1 {
		errs = append(errs, fmt.Errorf("recent_decay: must be in (0, 1], got %g", c.RecentDecay))
	}
	if c.MaxRecent < 1 {
		errs = append(errs, fmt.Errorf("max_recent: must be >= 1"))
	}
	if c.QueryCacheSize < 0 {
		errs = append(errs, fmt.Errorf("query_cache_size: must be >= 0"))
	}
	if c.CounterCache < 0 {
		errs = append(errs, fmt.Errorf("counter_cache: must be >= 0"))
	}
	if c.SeedCheck < 0 {
		errs = append(errs, fmt.Errorf("seed_check: must be >= 0 (0 means 1s)"))
	}
	if !(c.ExploreRate >= 0 && c.ExploreRate <= 1) {
		errs = append(errs, fmt.Errorf("explore_rate: must be in [0, 1], got %g", c.ExploreRate))
	}
	if err := c.Live.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New("live."+line))
		}
	}
	if err := c.Retrieval.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New("retrieval."+line))
		}
	}
	if err := c.Recommend.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New("recommend."+line))
		}
	}
	return errors.Join(errs...)
}

// FeatureStore fetches item feature rows for one bundle version. It bounds
// the fetch by its own timeout and leaves defaults in dst on error.
type FeatureStore interface {
	Fetch(ctx context.Context, version string, ids []string, dst, defaults []float32) (missing int, err error)
}

// RealtimeStore reads the counter updater's state: decayed item counts and
// the user's recent actions, for the counter and user features.
type RealtimeStore interface {
	FetchRealtime(ctx context.Context, now time.Time, user string, ids []string, counters bool) (rank.Realtime, error)
	// HalfLife is the counts' decay, for counts the engine caches.
	HalfLife() time.Duration
}

// FeatureSeeder writes a bundle's item features into the store when the
// store does not hold them yet (a fresh embedded Redis, a flushed cluster).
type FeatureSeeder interface {
	Ready(ctx context.Context, version string) (bool, error)
	WriteItems(ctx context.Context, version string, ids []string, rows [][]float32) error
	MarkReady(ctx context.Context, version string) error
}

// ImpressionSink receives the impression event of every response. It must
// not block the request.
type ImpressionSink interface {
	PublishAsync(ev feedback.Event)
}

// Deps are the engine's collaborators.
type Deps struct {
	// Features serves item feature rows; nil serves them from the loaded
	// bundle's own features file (offline evaluation and training, which
	// must see what the build wrote).
	Features    FeatureStore
	Realtime    RealtimeStore // nil: counter and user features keep their defaults
	Seeder      FeatureSeeder // may be nil when features are written at build time
	Impressions ImpressionSink
	// Items is the items topic; nil serves the bundles' catalogs as built.
	Items      ItemLog
	Rules      *rules.Set
	Load       LoadOptions
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Engine serves requests from the live generation.
type Engine struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	cache   *embed.Cache
	m       *metrics
	current atomic.Pointer[Generation]
	reseed  chan struct{}
	// rules are the live filter and business rules (Deps.Rules until
	// SetRules replaces them); rulesMu orders a swap against publish, so
	// a generation never goes live bound to replaced rules.
	rules        atomic.Pointer[rules.Set]
	rulesVersion atomic.Pointer[string]
	rulesMu      sync.Mutex
	// itemsMu orders the applier's batches against a load's replay and
	// publish; itemsNext is the offset after the last applied change (-1:
	// none yet), itemsTarget the topic's end when the applier started.
	itemsMu          sync.Mutex
	itemsNext        atomic.Int64
	itemsTarget      atomic.Int64
	itemsUnreachable atomic.Bool
}

// Rules is the live rule set (nil: none).
func (e *Engine) Rules() *rules.Set { return e.rules.Load() }

// RulesVersion names the live rules: "config", or the rules file's
// content hash.
func (e *Engine) RulesVersion() string { return *e.rulesVersion.Load() }

// SetRules makes s the live rules, for the live generation at once and
// every one loaded after. Requests already running finish with the rules
// they started with.
func (e *Engine) SetRules(s *rules.Set, version string) {
	e.rulesMu.Lock()
	defer e.rulesMu.Unlock()
	e.rules.Store(s)
	e.rulesVersion.Store(&version)
	if g := e.current.Load(); g != nil {
		g.filter.Store(s.Bind(g.items))
	}
	e.log.Info("rules live", "version", version)
}

// New returns an engine with no bundle loaded; call Load before serving.
func New(cfg Config, deps Deps) (*Engine, error) {
	if cfg.Retrieval == (RetrievalConfig{}) {
		cfg.Retrieval = DefaultRetrievalConfig() // callers that build a Config in code
	}
	if cfg.Live == (LiveConfig{}) {
		cfg.Live = DefaultLiveConfig()
	}
	if cfg.Recommend == (RecommendConfig{}) {
		cfg.Recommend = DefaultRecommendConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	e := &Engine{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, reseed: make(chan struct{}, 1)}
	e.itemsNext.Store(-1)
	e.rules.Store(deps.Rules)
	version := "config"
	e.rulesVersion.Store(&version)
	var err error
	if e.m, err = newMetrics(deps.Registerer); err != nil {
		return nil, err
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(newIndexCollector(e.current.Load)); err != nil {
			return nil, fmt.Errorf("engine metrics: %w", err)
		}
	}
	if cfg.QueryCacheSize > 0 {
		if e.cache, err = embed.NewCache(embed.CacheConfig{Size: cfg.QueryCacheSize}, deps.Registerer); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Current returns the live generation's version, or "".
func (e *Engine) Current() string {
	if g := e.current.Load(); g != nil {
		return g.Version()
	}
	return ""
}

// Ready reports whether a bundle is loaded (for readiness checks).
func (e *Engine) Ready(context.Context) error {
	if e.current.Load() == nil {
		return ErrNotReady
	}
	return nil
}

// Load opens the bundle in dir, seeds its features if the store lacks them,
// runs a smoke query against it and only then makes it live. On any error
// the previous generation keeps serving.
func (e *Engine) Load(ctx context.Context, dir string) error {
	g, err := OpenGeneration(dir, e.deps.Load)
	if err != nil {
		e.m.loads.WithLabelValues("refused").Inc()
		return err
	}
	g.filter.Store(e.Rules().Bind(g.items))
	t0 := time.Now()
	if e.deps.Features == nil {
		if g.itemRows, err = bundle.ReadFeatures(g.Dir, g.Manifest); err != nil {
			g.close()
			e.m.loads.WithLabelValues("refused").Inc()
			return fmt.Errorf("load bundle %s: %w", g.Version(), err)
		}
	}
	// The feature store is shared by every replica and a degradation, not
	// a dependency: a bundle loads while it is down, served with default
	// features (flagged), and Run seeds it when it answers.
	if e.deps.Seeder != nil {
		g.unseeded.Store(true)
		sctx, cancel := context.WithTimeout(ctx, seedAtLoad)
		err := e.seed(sctx, g)
		cancel()
		if err != nil {
			e.m.seeds.WithLabelValues("failed").Inc()
			e.log.Warn("feature store not seeded at load; serving default item features until it is", "bundle", g.Version(), "error", err)
		}
	}
	g.took("features", &t0)
	if err := e.smoke(ctx, g); err != nil {
		g.close()
		e.m.loads.WithLabelValues("refused").Inc()
		return fmt.Errorf("load bundle %s: smoke query: %w", g.Version(), err)
	}
	if err := e.publishLive(ctx, g); err != nil {
		g.close()
		e.m.loads.WithLabelValues("refused").Inc()
		return fmt.Errorf("load bundle %s: %w", g.Version(), err)
	}
	e.m.loads.WithLabelValues("loaded").Inc()
	g.took("smoke", &t0)
	// The rules the bundle was built with, beside the ones serving it, so
	// a drift between them shows.
	built := "none"
	if g.Manifest.Rules != nil {
		built = g.Manifest.Rules.Version
	}
	e.log.Info("bundle loaded", append([]any{"version", g.Version(), "items", g.Manifest.Items, "dim", g.Manifest.Dim,
		"rules_built", built, "rules_live", e.RulesVersion()}, g.loadTimes...)...)
	return nil
}

// publishLive hands the item changes the live generation holds beyond
// g's bundle to g (a replay of the items topic from g's offset) and
// publishes g, with the applier held off in between so no change is
// applied to the old generation only.
func (e *Engine) publishLive(ctx context.Context, g *Generation) error {
	if e.deps.Items == nil {
		e.publish(g)
		return nil
	}
	g.initLive(e.deps.Load) // for a generation assembled in code
	e.itemsMu.Lock()
	defer e.itemsMu.Unlock()
	to, first := e.itemsNext.Load(), e.itemsNext.Load() < 0
	if first {
		// The first bundle goes live with the changes written so far, so a
		// restart never serves an item as it was before them.
		ectx, cancel := context.WithTimeout(ctx, itemsAtLoad)
		end, err := e.deps.Items.End(ectx)
		cancel()
		switch {
		case err == nil:
			to = end
		case !errors.Is(err, itemlog.ErrNoTopic):
			e.itemsUnreachable.Store(true)
			e.log.Warn("items topic unreachable at load: serving the bundle's catalog until the applier reads it", "bundle", g.Version(), "error", err)
		}
	}
	if to > g.live.Load().next {
		t0 := time.Now()
		err := e.replayItems(ctx, g, to)
		if err != nil && !first {
			return err // the live generation keeps serving, changes and all
		}
		if err != nil {
			e.itemsUnreachable.Store(true)
			e.log.Warn("items topic replay failed at load: the applier goes on from where it stopped", "bundle", g.Version(), "error", err)
		} else if first {
			e.itemsNext.Store(to)
		}
		g.took("items", &t0)
	}
	e.publish(g)
	e.liveGauges(g, g.live.Load())
	return nil
}

// publish makes g live and retires the generation it replaces.
func (e *Engine) publish(g *Generation) {
	if g.cols == nil {
		g.cols = newColumns(g.items)
	}
	g.initLive(e.deps.Load) // for a generation assembled in code
	e.rulesMu.Lock()
	defer e.rulesMu.Unlock()
	// Rules reloaded while g loaded: bind the new ones.
	if live := e.Rules(); g.filter.Load() == nil || g.filter.Load().Set() != live {
		g.filter.Store(live.Bind(g.items))
	}
	if g.counters == nil && e.deps.Realtime != nil {
		g.counters = newCounterCache(len(g.items), e.cfg.CounterCache, e.deps.Realtime.HalfLife())
	}
	if old := e.current.Swap(g); old != nil {
		old.retire()
		e.m.bundle.DeleteLabelValues(old.Version())
	}
	e.m.bundle.WithLabelValues(g.Version()).Set(1)
	// A ranker without its Go form still serves; its explanations say why
	// they hold no contributions, and the gauge and the log say so too.
	if g.scorer == nil {
		e.m.explainable.Set(0)
	} else if _, _, _, err := g.scorer.Explain(make([]float32, len(g.Manifest.FeatureNames))); err != nil {
		e.m.explainable.Set(0)
		e.log.Warn("the live ranker cannot explain its scores: explain answers carry no contributions", "bundle", g.Version(), "reason", err)
	} else {
		e.m.explainable.Set(1)
	}
}

// Close retires the live generation.
func (e *Engine) Close() {
	if g := e.current.Swap(nil); g != nil {
		g.retire()
	}
}

// seed writes g's item features into the store unless its ready marker
// says they are there, and clears g.unseeded when the store holds them.
func (e *Engine) seed(ctx context.Context, g *Generation) error {
	s := e.deps.Seeder
	if s == nil {
		return nil
	}
	ok, err := s.Ready(ctx, g.Version())
	if err != nil {
		return fmt.Errorf("load bundle %s: feature store: %w", g.Version(), err)
	}
	if ok {
		g.unseeded.Store(false)
		return nil
	}
	g.unseeded.Store(true)
	rows, err := g.featureRows()
	if err != nil {
		return fmt.Errorf("load bundle %s: %w", g.Version(), err)
	}
	ids := make([]string, len(g.items))
	for i := range g.items {
		ids[i] = g.items[i].ID
	}
	if err := s.WriteItems(ctx, g.Version(), ids, rows); err != nil {
		return fmt.Errorf("load bundle %s: seed features: %w", g.Version(), err)
	}
	// Then the rows of the items changed since the bundle, over theirs.
	if ids, rows := g.live.Load().liveRows(); len(ids) > 0 {
		if err := s.WriteItems(ctx, g.Version(), ids, rows); err != nil {
			return fmt.Errorf("load bundle %s: seed changed items' features: %w", g.Version(), err)
		}
	}
	if err := s.MarkReady(ctx, g.Version()); err != nil {
		return fmt.Errorf("load bundle %s: seed features: %w", g.Version(), err)
	}
	g.unseeded.Store(false)
	e.m.seeds.WithLabelValues("seeded").Inc()
	e.log.Info("seeded feature store from bundle", "version", g.Version(), "items", len(ids))
	return nil
}

// smoke runs every model of g once so a bundle that loads but cannot serve
// is refused before it goes live.
func (e *Engine) smoke(ctx context.Context, g *Generation) error {
	vecs, err := g.encoder.Encode(ctx, []string{g.items[0].Title})
	if err != nil {
		return err
	}
	hits := g.index.Search(vecs[0], 1, nil)
	if len(hits) != 1 {
		return fmt.Errorf("index returned %d hits for k=1", len(hits))
	}
	if g.lexical != nil {
		lq := g.lexical.Parse(g.items[0].Title)
		r := g.lexical.Search(lq, 1, nil)
		n := len(r.Hits)
		r.Release()
		if n != 1 && lq.Words() > 0 {
			return fmt.Errorf("lexical index returned %d hits for the first item's title", n)
		}
	}
	x := make([]float32, len(g.Manifest.FeatureNames))
	scores, err := g.scorer.Score(ctx, x, 1)
	if err != nil {
		return err
	}
	if len(scores) != 1 {
		return fmt.Errorf("ranker returned %d scores for 1 row", len(scores))
	}
	return nil
}

// acquire pins the live generation for one request.
func (e *Engine) acquire() (*Generation, error) {
	for {
		g := e.current.Load()
		if g == nil {
			return nil, ErrNotReady
		}
		if g.acquire() {
			return g, nil
		}
	}
}

// Has reports whether the live generation holds an item with this id.
func (e *Engine) Has(id string) bool {
	g := e.current.Load()
	if g == nil {
		return false
	}
	_, ok := g.live.Load().lookup(id)
	return ok
}
