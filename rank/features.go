package rank

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

// Feature sources.
const (
	// SourceItem features are computed per item at build time and served
	// from the feature store.
	SourceItem = "item"
	// SourceRequest features are computed by the engine for each request.
	SourceRequest = "request"
	// SourceCounter features are real-time, time-decayed item engagement
	// counts that the counter updater keeps in Redis from the event topic.
	SourceCounter = "counter"
	// SourceUser features cross the user with the item: how much of the
	// user's recent actions (kept in Redis by the counter updater) fell on
	// the item's category or brand.
	SourceUser = "user"
)

// Built-in item feature names (see ItemFeatures).
const (
	FeatLogPopularity = "log_popularity"
	FeatLogPrice      = "log_price"
	FeatAgeDays       = "age_days"
	FeatAgeRating     = "age_rating"
	FeatAvailable     = "available"
	FeatCategoryID    = "category_id"
	FeatBrandID       = "brand_id"
	// FeatLogInteractions is log(1 + the item's user actions in the event
	// log the build replayed, over the mean of the used items'):
	// behaviour's popularity on a scale that does not grow with the log, 0
	// for an item no one used (or a build without events).
	FeatLogInteractions = "log_interactions"
)

// Request feature names, filled by the engine (see Layout.Fill).
const (
	// FeatRetrievalScore and FeatRetrievalRank are the candidate's score
	// and 0-based rank in the list retrieval handed to ranking: the fused
	// list for hybrid text queries (reciprocal-rank fusion scaled so 1 is
	// first in every source, or the normalised weighted sum), the one
	// source's own otherwise.
	FeatRetrievalScore = "retrieval_score"
	FeatRetrievalRank  = "retrieval_rank"
	// FeatLexicalScore is the candidate's BM25F score for the query (0
	// when no term matched); FeatLexicalRank its 0-based rank in the
	// lexical list, or that list's depth when it is not in it.
	FeatLexicalScore = "lexical_score"
	FeatLexicalRank  = "lexical_rank"
	// FeatDenseScore is the cosine of the query (or user) vector and the
	// item's; FeatDenseRank its rank among the nearest neighbours, or the
	// dense depth when it is not among them.
	FeatDenseScore = "dense_score"
	FeatDenseRank  = "dense_rank"
	// FeatBothSources is 1 when both the lexical and the dense list hold
	// the candidate.
	FeatBothSources = "found_by_both"
	// FeatTitleTermShare is the share of the query's words found in the
	// candidate's title.
	FeatTitleTermShare = "title_term_share"
	// FeatLexicalScoreRatio is the candidate's lexical score over the best
	// one among the request's candidates, and FeatDenseScoreGap the best
	// dense score less the candidate's: the same evidence on a scale that
	// does not move with the query, which raw BM25 scores do.
	FeatLexicalScoreRatio = "lexical_score_ratio"
	FeatDenseScoreGap     = "dense_score_gap"
	// FeatQueryWords is the number of distinct words in the query (0 for
	// recommendations): lets a tree weigh the sources by query length.
	FeatQueryWords = "query_words"
	// The collaborative candidate sources of recommendations: the
	// candidate's co-engagement score (the summed item-to-item
	// similarities to the user's history, over the best candidate's) and
	// its 0-based rank in that source's list (the source's quota when it
	// is not in it); the same for the matrix factorisation's predicted
	// preference; its rank in the popular list; and how many sources
	// listed it.
	FeatCoocScore   = "cooc_score"
	FeatCoocRank    = "cooc_rank"
	FeatALSScore    = "als_score"
	FeatALSRank     = "als_rank"
	FeatPopularRank = "popular_rank"
	FeatSourceCount = "source_count"
)

// Retrieval is what retrieval knows of one candidate: the request
// features Layout.Fill writes.
type Retrieval struct {
	Score      float32 // FeatRetrievalScore
	Rank       int     // FeatRetrievalRank
	LexScore   float32
	LexRank    int
	DenseScore float32
	DenseRank  int
	Both       bool
	TitleShare float32
	LexRatio   float32
	DenseGap   float32
	QueryWords int
	// Recommendation sources (FeatCoocScore and the rest).
	CoocScore, ALSScore      float32
	CoocRank, ALSRank        int
	PopularRank, SourceCount int
}

// Real-time item features (source counter).
const (
	// FeatItemImpressions is log(1 + decayed impressions).
	FeatItemImpressions = "item_impressions"
	// FeatItemClicks is log(1 + decayed clicks).
	FeatItemClicks = "item_clicks"
	// FeatItemCTR is the decayed click-through rate shrunk towards
	// CTRPriorMean with the weight of CTRPriorImpressions impressions, so a
	// new item with one lucky click does not look like a hit.
	FeatItemCTR = "item_ctr"
)

// The prior of FeatItemCTR: (clicks + mean*n) / (impressions + n).
const (
	CTRPriorMean        = 0.05
	CTRPriorImpressions = 20
)

// User-item cross features (source user).
const (
	// FeatUserCategoryAffinity is the recency-weighted share of the user's
	// recent actions on items of the candidate's category, in [0, 1].
	FeatUserCategoryAffinity = "user_category_affinity"
	// FeatUserBrandAffinity is the same share for the candidate's brand.
	FeatUserBrandAffinity = "user_brand_affinity"
	// FeatUserHistory is log(1 + the user's recent actions): how much the
	// affinities can be trusted. The same for every candidate.
	FeatUserHistory = "user_history"
	// FeatUserTagAffinity is the recency-weighted share of the user's
	// recent actions on items sharing a tag with the candidate, each action
	// counted by the share of its tags the candidate has.
	FeatUserTagAffinity = "user_tag_affinity"
)

// HistoryDecay weighs the i-th most recent action HistoryDecay^i in the
// user's affinities.
const HistoryDecay = 0.9

var (
	itemFeatureNames    = []string{FeatLogPopularity, FeatLogPrice, FeatAgeDays, FeatAgeRating, FeatAvailable, FeatCategoryID, FeatBrandID, FeatLogInteractions}
	requestFeatureNames = []string{FeatRetrievalScore, FeatRetrievalRank, FeatLexicalScore, FeatLexicalRank,
		FeatDenseScore, FeatDenseRank, FeatBothSources, FeatTitleTermShare, FeatLexicalScoreRatio, FeatDenseScoreGap, FeatQueryWords,
		FeatCoocScore, FeatCoocRank, FeatALSScore, FeatALSRank, FeatPopularRank, FeatSourceCount}
	counterFeatureNames = []string{FeatItemImpressions, FeatItemClicks, FeatItemCTR}
	userFeatureNames    = []string{FeatUserCategoryAffinity, FeatUserBrandAffinity, FeatUserHistory, FeatUserTagAffinity}
	sourceNames         = map[string][]string{SourceItem: itemFeatureNames, SourceRequest: requestFeatureNames,
		SourceCounter: counterFeatureNames, SourceUser: userFeatureNames}
)

// SourceOf returns the source that computes the named feature; ok is false
// for a name no source knows.
func SourceOf(name string) (source string, ok bool) {
	for src, names := range sourceNames {
		if slices.Contains(names, name) {
			return src, true
		}
	}
	return "", false
}

// Feature value types.
const (
	// TypeNumeric values are ordered quantities (counts, logs, scores).
	TypeNumeric = "numeric"
	// TypeCategorical values are ids: equal or not, never larger or
	// smaller in any sense a linear weight could use.
	TypeCategorical = "categorical"
	// TypeBinary values are 0 or 1.
	TypeBinary = "binary"
)

// featureTypes is the type of every built-in feature that is not numeric.
var featureTypes = map[string]string{FeatCategoryID: TypeCategorical, FeatBrandID: TypeCategorical, FeatAvailable: TypeBinary,
	FeatBothSources: TypeBinary}

// TypeOf is the value type of a built-in feature.
func TypeOf(name string) string {
	if t, ok := featureTypes[name]; ok {
		return t
	}
	return TypeNumeric
}

// FeatureSpec declares one feature of the ranking model's input vector.
type FeatureSpec struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// Type is the value type (numeric, categorical or binary); empty means
	// the built-in feature's own. It is checked against the built-in, and
	// a categorical feature cannot carry a linear weight: an id is not a
	// quantity. Trees split on ids as they split on any column.
	Type string `yaml:"type,omitempty"`
	// Default is served when a value is missing (an item absent from the
	// store, an unknown creation date), so the vector is always complete.
	Default float32 `yaml:"default"`
}

// Config is the rank section of the configuration.
type Config struct {
	// Features in the order of the model's input vector.
	Features []FeatureSpec `yaml:"features"`
	// Weights of the linear ranker by feature name; features without a
	// weight count 0.
	Weights map[string]float32 `yaml:"weights"`
	Bias    float32            `yaml:"bias"`
	// FetchTimeout bounds one feature-store round trip; past it the engine
	// serves retrieval order rather than wait.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// KeyPrefix namespaces the store's keys so several deployments can
	// share one Redis.
	KeyPrefix string `yaml:"key_prefix"`
	// ItemFeatures is where the item-source features are read per
	// request: ItemFeaturesBundle (the bundle's rows in process memory,
	// the default) or ItemFeaturesStore (the feature store, seeded from the
	// bundle at load, for a pipeline that updates them between builds).
	// Empty is ItemFeaturesBundle.
	ItemFeatures string `yaml:"item_features"`
}

// Where item features are served from (Config.ItemFeatures).
const (
	ItemFeaturesBundle = "bundle"
	ItemFeaturesStore  = "store"
)

// DefaultConfig declares every built-in feature with a small hand-set linear
// ranker, a sensible start before a trained model exists.
func DefaultConfig() Config {
	return Config{
		Features: []FeatureSpec{
			{Name: FeatRetrievalScore, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatRetrievalRank, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatLexicalScore, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatLexicalRank, Source: SourceRequest, Type: TypeNumeric, Default: 100},
			{Name: FeatDenseScore, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatDenseRank, Source: SourceRequest, Type: TypeNumeric, Default: 100},
			{Name: FeatBothSources, Source: SourceRequest, Type: TypeBinary},
			{Name: FeatTitleTermShare, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatLexicalScoreRatio, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatDenseScoreGap, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatQueryWords, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatCoocScore, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatCoocRank, Source: SourceRequest, Type: TypeNumeric, Default: 100},
			{Name: FeatALSScore, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatALSRank, Source: SourceRequest, Type: TypeNumeric, Default: 100},
			{Name: FeatPopularRank, Source: SourceRequest, Type: TypeNumeric, Default: 20},
			{Name: FeatSourceCount, Source: SourceRequest, Type: TypeNumeric},
			{Name: FeatLogPopularity, Source: SourceItem, Type: TypeNumeric},
			{Name: FeatLogPrice, Source: SourceItem, Type: TypeNumeric},
			{Name: FeatAgeDays, Source: SourceItem, Type: TypeNumeric, Default: 365},
			{Name: FeatAgeRating, Source: SourceItem, Type: TypeNumeric},
			{Name: FeatAvailable, Source: SourceItem, Type: TypeBinary, Default: 1},
			{Name: FeatCategoryID, Source: SourceItem, Type: TypeCategorical},
			{Name: FeatBrandID, Source: SourceItem, Type: TypeCategorical},
			{Name: FeatLogInteractions, Source: SourceItem, Type: TypeNumeric},
			{Name: FeatItemImpressions, Source: SourceCounter, Type: TypeNumeric},
			{Name: FeatItemClicks, Source: SourceCounter, Type: TypeNumeric},
			{Name: FeatItemCTR, Source: SourceCounter, Type: TypeNumeric, Default: CTRPriorMean},
			{Name: FeatUserCategoryAffinity, Source: SourceUser, Type: TypeNumeric},
			{Name: FeatUserBrandAffinity, Source: SourceUser, Type: TypeNumeric},
			{Name: FeatUserHistory, Source: SourceUser, Type: TypeNumeric},
			{Name: FeatUserTagAffinity, Source: SourceUser, Type: TypeNumeric},
		},
		Weights: map[string]float32{
			FeatRetrievalScore: 1,
			FeatLogPopularity:  0.05,
			FeatAgeDays:        -0.0005,
		},
		FetchTimeout: 50 * time.Millisecond,
		KeyPrefix:    "recsys",
		ItemFeatures: ItemFeaturesBundle,
	}
}

// Validate reports every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if len(c.Features) == 0 {
		errs = append(errs, errors.New("features: must not be empty"))
	}
	seen := make(map[string]int, len(c.Features))
	for i, f := range c.Features {
		key := fmt.Sprintf("features[%d]", i)
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", key))
		} else if j, dup := seen[f.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicate %q (also features[%d])", key, f.Name, j))
		} else {
			seen[f.Name] = i
		}
		if math.IsNaN(float64(f.Default)) || math.IsInf(float64(f.Default), 0) {
			errs = append(errs, fmt.Errorf("%s.default: must be finite", key))
		}
		switch f.Type {
		case "", TypeNumeric, TypeCategorical, TypeBinary:
			if f.Type != "" && f.Name != "" && f.Type != TypeOf(f.Name) {
				errs = append(errs, fmt.Errorf("%s.type: %s is %s, not %s", key, f.Name, TypeOf(f.Name), f.Type))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.type: must be numeric, categorical or binary, got %q", key, f.Type))
		}
		if known, ok := sourceNames[f.Source]; !ok {
			errs = append(errs, fmt.Errorf("%s.source: must be item, request, counter or user, got %q", key, f.Source))
		} else if f.Name != "" && !slices.Contains(known, f.Name) {
			errs = append(errs, fmt.Errorf("%s.name: unknown %s feature %q (known: %s)", key, f.Source, f.Name, strings.Join(known, ", ")))
		}
	}
	names := make([]string, 0, len(c.Weights))
	for name := range c.Weights {
		names = append(names, name)
	}
	sort.Strings(names) // stable error order for a map
	for _, name := range names {
		if _, ok := seen[name]; !ok {
			errs = append(errs, fmt.Errorf("weights.%s: not a declared feature", name))
		}
		if TypeOf(name) == TypeCategorical && c.Weights[name] != 0 {
			errs = append(errs, fmt.Errorf("weights.%s: a categorical feature (an id) cannot have a linear weight", name))
		}
		if w := c.Weights[name]; math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			errs = append(errs, fmt.Errorf("weights.%s: must be finite", name))
		}
	}
	if c.FetchTimeout <= 0 {
		errs = append(errs, errors.New("fetch_timeout: must be > 0"))
	}
	if c.KeyPrefix == "" {
		errs = append(errs, errors.New("key_prefix: must not be empty"))
	} else if strings.ContainsAny(c.KeyPrefix, " \t\r\n") {
		errs = append(errs, errors.New("key_prefix: must not contain whitespace"))
	}
	switch c.ItemFeatures {
	case "", ItemFeaturesBundle, ItemFeaturesStore:
	default:
		errs = append(errs, fmt.Errorf("item_features: must be %s or %s, got %q", ItemFeaturesBundle, ItemFeaturesStore, c.ItemFeatures))
	}
	return errors.Join(errs...)
}

// Names is every feature name in vector order.
func (c Config) Names() []string {
	out := make([]string, len(c.Features))
	for i, f := range c.Features {
		out[i] = f.Name
	}
	return out
}

// ItemNames is the item-source feature names in declared order: the layout
// of one row in the feature store.
func (c Config) ItemNames() []string {
	var out []string
	for _, f := range c.Features {
		if f.Source == SourceItem {
			out = append(out, f.Name)
		}
	}
	return out
}

// Defaults is every feature's default in vector order.
func (c Config) Defaults() []float32 {
	out := make([]float32, len(c.Features))
	for i, f := range c.Features {
		out[i] = f.Default
	}
	return out
}

// ItemDefaults is the item-source defaults in store-row order, what
// Store.Fetch takes.
func (c Config) ItemDefaults() []float32 {
	var out []float32
	for _, f := range c.Features {
		if f.Source == SourceItem {
			out = append(out, f.Default)
		}
	}
	return out
}

// ItemFeatures computes the store rows of items: one row per item, columns in
// cfg.ItemNames() order. All rows share one backing array. now fixes age_days
// so a build is reproducible; an item without a creation date gets the
// age_days default, and an item dated in the future gets 0. uses[i] is
// item i's decayed interactions (log_interactions; 0 past its end).
func ItemFeatures(cfg Config, items []catalog.Item, d *Dict, now time.Time, uses []float32) ([][]float32, error) {
	specs := make([]FeatureSpec, 0, len(cfg.Features))
	for _, f := range cfg.Features {
		if f.Source != SourceItem {
			continue
		}
		if !slices.Contains(itemFeatureNames, f.Name) {
			return nil, fmt.Errorf("item features: unknown item feature %q", f.Name)
		}
		specs = append(specs, f)
	}
	if d == nil {
		d = &Dict{}
	}
	nf := len(specs)
	backing := make([]float32, len(items)*nf)
	rows := make([][]float32, len(items))
	for i := range items {
		var u float32
		if i < len(uses) {
			u = uses[i]
		}
		rows[i] = backing[i*nf : (i+1)*nf : (i+1)*nf]
		ItemRow(rows[i], specs, &items[i], d, now, u)
	}
	return rows, nil
}

// ItemRow computes one item's row into row, one value per spec (item
// features only, as ItemFeatures checked them); uses is the item's decayed
// interactions. The live catalog computes a changed item's row with it,
// thousands a second, without ItemFeatures' per-call checks and copies.
func ItemRow(row []float32, specs []FeatureSpec, it *catalog.Item, d *Dict, now time.Time, uses float32) {
	for j, f := range specs {
		if f.Name == FeatLogInteractions {
			row[j] = float32(math.Log1p(math.Max(float64(uses), 0)))
			continue
		}
		row[j] = itemFeature(f, it, d, now)
	}
}

func itemFeature(f FeatureSpec, it *catalog.Item, d *Dict, now time.Time) float32 {
	switch f.Name {
	case FeatLogPopularity:
		return float32(math.Log1p(math.Max(it.Popularity, 0)))
	case FeatLogPrice:
		return float32(math.Log1p(math.Max(it.Price, 0)))
	case FeatAgeDays:
		if it.CreatedAt.IsZero() {
			return f.Default
		}
		return float32(max(now.Sub(it.CreatedAt).Hours()/24, 0))
	case FeatAgeRating:
		return float32(it.AgeRating)
	case FeatAvailable:
		if it.Available {
			return 1
		}
		return 0
	case FeatCategoryID:
		return float32(d.CategoryID(it.Category))
	case FeatBrandID:
		return float32(d.BrandID(it.Brand))
	}
	return f.Default
}

// Layout maps the declared vector onto its sources, so the engine (and
// the training job, replaying impressions) assemble vectors identically.
type Layout struct {
	n       int
	itemPos []int // vector position of each store-row column
	// Positions of the request features, -1 when not declared.
	scorePos, rankPos, lexScorePos, lexRankPos, denseScorePos, denseRankPos, bothPos, titlePos int
	lexRatioPos, denseGapPos, wordsPos                                                         int
	coocScorePos, coocRankPos, alsScorePos, alsRankPos, popRankPos, srcCountPos                int
	// Positions of the counter and user features, -1 when not declared.
	impPos, clkPos, ctrPos, catPos, brandPos, histPos, tagPos int
	defaults                                                  []float32
}

// NewLayout precomputes the positions of cfg's features.
func NewLayout(cfg Config) Layout {
	l := Layout{n: len(cfg.Features), scorePos: -1, rankPos: -1, lexScorePos: -1, lexRankPos: -1,
		denseScorePos: -1, denseRankPos: -1, bothPos: -1, titlePos: -1, lexRatioPos: -1, denseGapPos: -1, wordsPos: -1,
		coocScorePos: -1, coocRankPos: -1, alsScorePos: -1, alsRankPos: -1, popRankPos: -1, srcCountPos: -1,
		impPos: -1, clkPos: -1, ctrPos: -1, catPos: -1, brandPos: -1, histPos: -1, tagPos: -1, defaults: cfg.Defaults()}
	for i, f := range cfg.Features {
		if f.Source == SourceItem {
			l.itemPos = append(l.itemPos, i)
			continue
		}
		switch f.Name {
		case FeatRetrievalScore:
			l.scorePos = i
		case FeatRetrievalRank:
			l.rankPos = i
		case FeatLexicalScore:
			l.lexScorePos = i
		case FeatLexicalRank:
			l.lexRankPos = i
		case FeatDenseScore:
			l.denseScorePos = i
		case FeatDenseRank:
			l.denseRankPos = i
		case FeatBothSources:
			l.bothPos = i
		case FeatTitleTermShare:
			l.titlePos = i
		case FeatLexicalScoreRatio:
			l.lexRatioPos = i
		case FeatDenseScoreGap:
			l.denseGapPos = i
		case FeatQueryWords:
			l.wordsPos = i
		case FeatItemImpressions:
			l.impPos = i
		case FeatItemClicks:
			l.clkPos = i
		case FeatItemCTR:
			l.ctrPos = i
		case FeatUserCategoryAffinity:
			l.catPos = i
		case FeatUserBrandAffinity:
			l.brandPos = i
		case FeatUserHistory:
			l.histPos = i
		case FeatUserTagAffinity:
			l.tagPos = i
		case FeatCoocScore:
			l.coocScorePos = i
		case FeatCoocRank:
			l.coocRankPos = i
		case FeatALSScore:
			l.alsScorePos = i
		case FeatALSRank:
			l.alsRankPos = i
		case FeatPopularRank:
			l.popRankPos = i
		case FeatSourceCount:
			l.srcCountPos = i
		}
	}
	return l
}

// Len is the vector length.
func (l Layout) Len() int { return l.n }

// ItemLen is the store-row length.
func (l Layout) ItemLen() int { return len(l.itemPos) }

// NeedsCounters reports whether any counter feature is declared.
func (l Layout) NeedsCounters() bool { return l.impPos >= 0 || l.clkPos >= 0 || l.ctrPos >= 0 }

// NeedsUser reports whether any user feature is declared.
func (l Layout) NeedsUser() bool {
	return l.catPos >= 0 || l.brandPos >= 0 || l.histPos >= 0 || l.tagPos >= 0
}

// Fill writes one full vector into dst (len Len()) from a store row (len
// ItemLen()) and the request features. Ranks are 0-based. Positions no
// source fills keep their defaults.
func (l Layout) Fill(dst, itemRow []float32, r Retrieval) {
	copy(dst, l.defaults)
	for j, pos := range l.itemPos {
		dst[pos] = itemRow[j]
	}
	set(dst, l.scorePos, float64(r.Score))
	set(dst, l.rankPos, float64(r.Rank))
	set(dst, l.lexScorePos, float64(r.LexScore))
	set(dst, l.lexRankPos, float64(r.LexRank))
	set(dst, l.denseScorePos, float64(r.DenseScore))
	set(dst, l.denseRankPos, float64(r.DenseRank))
	if r.Both {
		set(dst, l.bothPos, 1)
	} else {
		set(dst, l.bothPos, 0)
	}
	set(dst, l.titlePos, float64(r.TitleShare))
	set(dst, l.lexRatioPos, float64(r.LexRatio))
	set(dst, l.denseGapPos, float64(r.DenseGap))
	set(dst, l.wordsPos, float64(r.QueryWords))
	if r.SourceCount == 0 {
		return // not from the recommendation sources: their features keep the defaults
	}
	set(dst, l.coocScorePos, float64(r.CoocScore))
	set(dst, l.coocRankPos, float64(r.CoocRank))
	set(dst, l.alsScorePos, float64(r.ALSScore))
	set(dst, l.alsRankPos, float64(r.ALSRank))
	set(dst, l.popRankPos, float64(r.PopularRank))
	set(dst, l.srcCountPos, float64(r.SourceCount))
}

// FillCounters writes the counter features from an item's decayed counts.
func (l Layout) FillCounters(dst []float32, impressions, clicks float64) {
	set(dst, l.impPos, math.Log1p(impressions))
	set(dst, l.clkPos, math.Log1p(clicks))
	set(dst, l.ctrPos, (clicks+CTRPriorMean*CTRPriorImpressions)/(impressions+CTRPriorImpressions))
}

// FillUser writes the user features of one candidate from the user's
// profile.
func (l Layout) FillUser(dst []float32, p *UserProfile, category, brand string, tags []string) {
	t := 0.0
	if l.tagPos >= 0 {
		for _, tag := range tags {
			t += p.Tags[tag]
		}
	}
	l.SetUser(dst, p.Categories[category], p.Brands[brand], t, p.Actions)
}

// SetUser writes one candidate's user features from what FillUser reads
// in the profile: its category's and brand's weights, the sum of its
// tags' weights, and the profile's number of actions.
func (l Layout) SetUser(dst []float32, category, brand, tags float64, actions int) {
	set(dst, l.catPos, category)
	set(dst, l.brandPos, brand)
	set(dst, l.histPos, math.Log1p(float64(actions)))
	set(dst, l.tagPos, min(tags, 1))
}

// WantsTags reports whether the layout has the tag-affinity feature (a
// caller may skip summing tag weights otherwise).
func (l Layout) WantsTags() bool { return l.tagPos >= 0 }

func set(dst []float32, pos int, v float64) {
	if pos >= 0 {
		dst[pos] = float32(v)
	}
}

// UserProfile is the recency-weighted share of a user's recent actions per
// category and per brand.
type UserProfile struct {
	Categories map[string]float64
	Brands     map[string]float64
	// Tags are each action's tags, an action's weight shared among them.
	Tags    map[string]float64
	Actions int
}

// NewUserProfile builds a profile from the categories, brands and tags
// (nil for none) of the items a user acted on, most recent first; the i-th
// weighs HistoryDecay^i. Unknown items (the catalog changed) are passed as
// empty strings and skipped.
func NewUserProfile(categories, brands []string, tags [][]string) *UserProfile {
	p := &UserProfile{Categories: map[string]float64{}, Brands: map[string]float64{}, Tags: map[string]float64{}}
	w, total := 1.0, 0.0
	for i := range categories {
		if categories[i] != "" || brands[i] != "" {
			if categories[i] != "" {
				p.Categories[categories[i]] += w
			}
			if brands[i] != "" {
				p.Brands[brands[i]] += w
			}
			if i < len(tags) && len(tags[i]) > 0 {
				share := w / float64(len(tags[i]))
				for _, t := range tags[i] {
					p.Tags[t] += share
				}
			}
			total += w
			p.Actions++
		}
		w *= HistoryDecay
	}
	for _, m := range []map[string]float64{p.Categories, p.Brands, p.Tags} {
		for k := range m {
			m[k] /= total
		}
	}
	return p
}
