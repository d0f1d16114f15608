package offline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/offline/cftrain"
)

// Events is the event log as a build reads it: fn sees every event of
// the replayed range in log order.
type Events interface {
	Replay(ctx context.Context, fn func(feedback.Event) error) error
}

// SourcesConfig is build.sources: how the recommendation candidate
// sources are trained from the event log.
type SourcesConfig struct {
	// Weights is each user action's strength by event type; types not
	// listed (impressions, dwell) are not interactions.
	Weights map[string]float32 `yaml:"weights"`
	// MinInteractions is the fewest interactions on catalog items that
	// train the collaborative sources; below it the bundle has popularity
	// and content only.
	MinInteractions int `yaml:"min_interactions"`
	// PopularHalfLife decays the use counts that order the popular
	// source, by age at the newest interaction.
	PopularHalfLife time.Duration `yaml:"popular_half_life"`
	// ExactFactorsBelow builds the factor index as an exact scan for
	// catalogs of at most this many items (a scan of 10k x 65 floats costs
	// about what a graph walk does, and finds every neighbour); larger
	// catalogs get an HNSW graph.
	ExactFactorsBelow int                      `yaml:"exact_factors_below"`
	Neighbours        cftrain.NeighboursConfig `yaml:"neighbours"`
	ALS               cftrain.ALSConfig        `yaml:"als"`
}

// DefaultSourcesConfig is what config.yaml spells out.
func DefaultSourcesConfig() SourcesConfig {
	return SourcesConfig{
		Weights:         map[string]float32{feedback.TypeClick: 1, feedback.TypeAddToCart: 2, feedback.TypePurchase: 3},
		MinInteractions: 100, PopularHalfLife: 7 * 24 * time.Hour, ExactFactorsBelow: 20000,
		Neighbours: cftrain.DefaultNeighboursConfig(), ALS: cftrain.DefaultALSConfig(),
	}
}

// Validate reports every bad value with its key.
func (c SourcesConfig) Validate() error {
	var errs []error
	for t, w := range c.Weights {
		if !isActionType(t) {
			errs = append(errs, fmt.Errorf("weights.%s: not a user action type (want click, add_to_cart, purchase or dwell)", t))
		}
		if !(w > 0) || math.IsInf(float64(w), 0) {
			errs = append(errs, fmt.Errorf("weights.%s: must be > 0, got %g", t, w))
		}
	}
	if c.MinInteractions < 1 {
		errs = append(errs, fmt.Errorf("min_interactions: must be >= 1, got %d", c.MinInteractions))
	}
	if c.ExactFactorsBelow < 0 {
		errs = append(errs, fmt.Errorf("exact_factors_below: must be >= 0, got %d", c.ExactFactorsBelow))
	}
	if c.PopularHalfLife < 0 {
		errs = append(errs, errors.New("popular_half_life: must be >= 0 (0: no decay)"))
	}
	prefix := func(p string, err error) {
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New(p+"."+line))
		}
	}
	prefix("neighbours", c.Neighbours.Validate())
	prefix("als", c.ALS.Validate())
	return errors.Join(errs...)
}

func isActionType(t string) bool {
	switch t {
	case feedback.TypeClick, feedback.TypeAddToCart, feedback.TypePurchase, feedback.TypeDwell:
		return true
	}
	return false
}

// interactions replays the event log into interactions on the catalog's
// items (dense user numbers by first appearance). Actions on items the
// catalog lacks are counted, not used.
func interactions(ctx context.Context, ev Events, items []catalog.Item, weights map[string]float32) (in []cftrain.Interaction, users int, unknown int, err error) {
	byID := make(map[string]int32, len(items))
	for i := range items {
		byID[items[i].ID] = int32(i)
	}
	userNo := map[string]int32{}
	err = ev.Replay(ctx, func(e feedback.Event) error {
		w, ok := weights[e.Type]
		if !ok || e.ItemID == "" {
			return nil
		}
		item, ok := byID[e.ItemID]
		if !ok {
			unknown++
			return nil
		}
		u, ok := userNo[e.UserID]
		if !ok {
			u = int32(len(userNo))
			userNo[e.UserID] = u
		}
		in = append(in, cftrain.Interaction{User: u, Item: item, Time: e.Timestamp, Weight: w})
		return nil
	})
	return in, len(userNo), unknown, err
}

// trainSources trains the recommendation sources from o.Events into the
// staged bundle; nil when the build has no event log.
//
// uses are the items' decayed interactions (nil without events), the
// log_interactions feature.
func trainSources(ctx context.Context, o BuildOptions, stage *bundle.Stage, items []catalog.Item, p *progress) (s *bundle.Sources, uses []float32, err error) {
	if o.Events == nil {
		return nil, nil, nil
	}
	sc := o.Sources
	if sc.Weights == nil {
		sc = DefaultSourcesConfig()
	}
	if err := sc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	p.step("replay the event log for the recommendation sources")
	start := time.Now()
	in, users, unknown, err := interactions(ctx, o.Events, items, sc.Weights)
	if err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	s = &bundle.Sources{Interactions: len(in), Users: users}
	used := make([]bool, len(items))
	for _, x := range in {
		used[x.Item] = true
		if x.Time.After(s.Until) {
			s.Until = x.Time
		}
	}
	for _, u := range used {
		if u {
			s.UsedItems++
		}
	}
	p.done("%d interactions by %d users on %d items (%d on items not in the catalog) in %s",
		len(in), users, s.UsedItems, unknown, time.Since(start).Round(time.Millisecond))
	if len(in) == 0 {
		return s, nil, nil
	}
	// Decay is measured from the newest interaction, not the clock: a
	// replayed or late log ages as it did when it was written.
	ref := s.Until

	// The popular file holds the decayed counts (the popular source's
	// order: what is used lately) and then the all-time ones over their
	// mean among the used items (log_interactions): a log that grows
	// every night would move under a ranker trained on an older one.
	pop := make([]float32, 2*len(items))
	uses = pop[len(items):]
	var total float64
	for _, x := range in {
		pop[x.Item] += x.Weight * decay(ref.Sub(x.Time), sc.PopularHalfLife)
		uses[x.Item] += x.Weight
		total += float64(x.Weight)
	}
	mean := total / float64(s.UsedItems)
	for i := range uses {
		uses[i] = float32(float64(uses[i]) / mean)
	}
	if err := bundle.WriteFloats(stage.Path(bundle.PopularFile), pop); err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	s.Popular = &bundle.Model{File: bundle.PopularFile, Kind: "decayed-counts", Version: sc.PopularHalfLife.String()}
	if len(in) < sc.MinInteractions {
		p.step("collaborative sources")
		p.done("skipped: %d interactions, build.sources.min_interactions is %d", len(in), sc.MinInteractions)
		return s, uses, nil
	}

	p.step("train item-to-item co-engagement neighbours (top %d)", sc.Neighbours.TopN)
	nb, rep, err := cftrain.TrainNeighbours(ctx, in, len(items), ref, sc.Neighbours)
	if err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	if err := nb.WriteFile(stage.Path(bundle.NeighboursFile)); err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	s.Neighbours = &bundle.Model{File: bundle.NeighboursFile, Kind: "cooc-neighbours", Version: fmt.Sprintf("top%d", sc.Neighbours.TopN)}
	p.done("%d pairs in %.1fs", rep.Pairs, rep.Seconds)

	p.step("train implicit matrix factorisation (%d factors, %d iterations)", sc.ALS.Factors, sc.ALS.Iterations)
	f, rep, err := cftrain.TrainALS(ctx, in, users, len(items), ref, sc.ALS)
	if err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	if err := f.WriteFile(stage.Path(bundle.FactorsFile)); err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	p.done("%.1fs", rep.Seconds)

	p.step("build the factor index (inner product as cosine over %d+1 dimensions)", f.Dim())
	// (its backend is decided below)
	icfg := o.Index
	icfg.Backend, icfg.Quantize = index.BackendHNSW, index.QuantizeNone
	if len(items) <= sc.ExactFactorsBelow {
		icfg.Backend = index.BackendExact
	}
	ix, err := index.Build(ctx, icfg, f.Dim()+1, f.MIPSVectors())
	if err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	if err := ix.WriteFile(stage.Path(bundle.FactorsIndexFile)); err != nil {
		return nil, nil, fmt.Errorf("sources: %w", err)
	}
	s.Factors = &bundle.Model{File: bundle.FactorsFile, Kind: "implicit-als", Version: fmt.Sprintf("f%d-l%g-a%g", sc.ALS.Factors, sc.ALS.Lambda, sc.ALS.Alpha)}
	s.FactorsIndex = &bundle.Model{File: bundle.FactorsIndexFile, Kind: icfg.Backend, Version: fmt.Sprintf("m%d", icfg.M)}
	p.done("%d vectors", ix.Len())
	return s, uses, nil
}

// decay is 2^(-age/halfLife); 1 without a half-life.
func decay(age, halfLife time.Duration) float32 {
	if halfLife <= 0 || age <= 0 {
		return 1
	}
	return float32(math.Exp2(-float64(age) / float64(halfLife)))
}
