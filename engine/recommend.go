package engine

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/viterin/vek/vek32"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/index/cf"
	"github.com/recsys-dev/recsys/rank"
)

// The candidate sources of a recommendation, as requests name them and
// explanations report them.
const (
	// SourceContent is content similarity: the nearest items to the
	// user's (or the seed's) embedding.
	SourceContent = "content"
	// SourceCooc is item-to-item co-engagement: the items most often used
	// together with the history's, popular ones discounted.
	SourceCooc = "cooc"
	// SourceALS is the matrix factorisation: the user folded into the
	// item factors, the items of highest predicted preference.
	SourceALS = "als"
	// SourcePopular is the items most used lately (decayed counts from the
	// event log at build time; the catalog's popularity without events).
	SourcePopular = "popular"
	// SourceFresh is the newest items (younger than fresh_age), so items no
	// one has used yet reach users and an explore rule can place them.
	SourceFresh = "fresh"
)

// RecommendSources are the sources in merge order.
var RecommendSources = []string{SourceContent, SourceCooc, SourceALS, SourcePopular, SourceFresh}

const (
	srcContent uint8 = 1 << iota
	srcCooc
	srcALS
	srcPopular
	srcFresh

	personalSources = srcContent | srcCooc | srcALS
)

// sourceBits is the bit set of names; an unknown name is an error naming
// it.
func sourceBits(names []string) (uint8, error) {
	var bits uint8
	for _, n := range names {
		i := slices.Index(RecommendSources, n)
		if i < 0 {
			return 0, fmt.Errorf("unknown source %q (want some of %q)", n, RecommendSources)
		}
		bits |= 1 << i
	}
	return bits, nil
}

// Quotas are how many candidates each source lists for one request; 0
// turns a source off. The merged list holds at most their sum.
type Quotas struct {
	Content int `yaml:"content"`
	Cooc    int `yaml:"cooc"`
	ALS     int `yaml:"als"`
	Popular int `yaml:"popular"`
	Fresh   int `yaml:"fresh"`
}

func (q Quotas) of(bit uint8) int {
	switch bit {
	case srcContent:
		return q.Content
	case srcCooc:
		return q.Cooc
	case srcALS:
		return q.ALS
	case srcPopular:
		return q.Popular
	}
	return q.Fresh
}

// RecommendConfig is engine.recommend: the candidate sources of a user's
// (or a seed item's) recommendations and how they merge.
type RecommendConfig struct {
	Quotas Quotas `yaml:"quotas"`
	// MaxHistory is how many of the user's most recent items the
	// collaborative sources read.
	MaxHistory int `yaml:"max_history"`
	// HistoryDecay weighs the i-th most recent history item HistoryDecay^i
	// in the collaborative sources.
	HistoryDecay float64 `yaml:"history_decay"`
	// RRFK orders the merged list: the sum over the sources of
	// 1 / (rrf_k + rank), scaled so 1 is first in every source.
	RRFK float64 `yaml:"rrf_k"`
	// FreshAge is how young an item must be for the fresh source.
	FreshAge time.Duration `yaml:"fresh_age"`
	// ALSEfSearch is the factor graph's search list (index.ef_search is
	// the content graph's): the inner-product search over augmented
	// vectors, filtered by the user's seen items, needs a longer one for
	// the same recall.
	ALSEfSearch int `yaml:"als_ef_search"`
}

// DefaultRecommendConfig is what config.yaml spells out.
func DefaultRecommendConfig() RecommendConfig {
	return RecommendConfig{Quotas: Quotas{Content: 100, Cooc: 100, ALS: 100, Popular: 20, Fresh: 10},
		MaxHistory: 200, HistoryDecay: 0.933, RRFK: 60, FreshAge: 30 * 24 * time.Hour, ALSEfSearch: 400}
}

// Validate reports every bad value with its key.
func (c RecommendConfig) Validate() error {
	var errs []error
	for _, q := range []struct {
		name string
		v    int
	}{{"content", c.Quotas.Content}, {"cooc", c.Quotas.Cooc}, {"als", c.Quotas.ALS}, {"popular", c.Quotas.Popular}, {"fresh", c.Quotas.Fresh}} {
		if q.v < 0 || q.v > MaxK {
			errs = append(errs, fmt.Errorf("quotas.%s: must be in 0..%d, got %d", q.name, MaxK, q.v))
		}
	}
	if c.MaxHistory < 1 || c.MaxHistory > 10000 {
		errs = append(errs, fmt.Errorf("max_history: must be in 1..10000, got %d", c.MaxHistory))
	}
	if !(c.HistoryDecay > 0 && c.HistoryDecay <= 1) {
		errs = append(errs, fmt.Errorf("history_decay: must be in (0, 1], got %g", c.HistoryDecay))
	}
	if !(c.RRFK >= 0) || math.IsInf(c.RRFK, 0) {
		errs = append(errs, fmt.Errorf("rrf_k: must be >= 0, got %g", c.RRFK))
	}
	if c.FreshAge < 0 {
		errs = append(errs, errors.New("fresh_age: must be >= 0"))
	}
	if c.ALSEfSearch < 1 || c.ALSEfSearch > 100000 {
		errs = append(errs, fmt.Errorf("als_ef_search: must be in 1..100000, got %d", c.ALSEfSearch))
	}
	return errors.Join(errs...)
}

// historyOf maps the history's item ids (most recent first) to item
// numbers with their weights, at most max_history, skipping unknown ones.
func (e *Engine) historyOf(v *view, ids []string) (hist []int32, w []float32) {
	rc := e.cfg.Recommend
	wt := 1.0
	for _, id := range ids {
		if len(hist) == rc.MaxHistory {
			break
		}
		if i, ok := v.lookup(id); ok && !slices.Contains(hist, i) {
			hist = append(hist, i)
			w = append(w, float32(wt))
			wt *= rc.HistoryDecay
		}
	}
	return hist, w
}

// recommendCandidates merges the sources' lists for a history (or a seed
// as a history of one): each candidate knows which sources listed it at
// which rank, and every source's score of it where that is cheap to know
// (content and factorisation for all; co-engagement for those any history
// item reaches). The merged order is reciprocal-rank fusion.
func (e *Engine) recommendCandidates(g *Generation, in stageInput, keep index.Filter, sc *scratch, now time.Time) []candidate {
	rc := e.cfg.Recommend
	q := rc.Quotas
	on := func(bit uint8) bool { return (in.sources == 0 || in.sources&bit != 0) && q.of(bit) > 0 }
	var lists [5][]index.Hit
	var x []float32      // the folded-in user vector
	var alsAll []float32 // its score of every item, when the factors are scanned
	if on(srcContent) && in.vec != nil {
		lists[0] = in.v.searchDense(in.vec, max(q.Content, in.k), keep)
	}
	coocRan := g.cooc != nil && len(in.hist) > 0 && (on(srcCooc) || in.sources == 0)
	if coocRan {
		// Also run when its quota is 0 but all sources are on, so its
		// score is a feature of every candidate.
		lists[1] = g.cooc.Recommend(in.hist, in.histW, q.Cooc, keep, &sc.cf)
		if !on(srcCooc) {
			lists[1] = lists[1][:0]
		}
	}
	if g.als != nil && len(in.hist) > 0 {
		x = make([]float32, g.als.Dim())
		if !g.als.FoldIn(in.hist, in.histW, x) {
			x = nil
		}
		if x != nil && g.alsExact {
			// An exact scan scores every item anyway: score the factors
			// themselves once, and read the candidates' scores from them.
			alsAll = grow(sc.als, g.als.Len())[:g.als.Len()]
			sc.als = alsAll
			g.als.ScoreAll(x, alsAll)
			if on(srcALS) {
				lists[2] = index.TopK(alsAll, q.ALS, keep)
			}
		} else if x != nil && on(srcALS) {
			mq := make([]float32, g.als.Dim()+1)
			g.als.MIPSQuery(x, mq)
			hits := g.alsIndex.Search(mq, q.ALS, keep)
			for i := range hits {
				hits[i].Score = g.als.Score(x, hits[i].ID)
			}
			// The graph orders by cosine of the augmented vectors, which
			// the inner product orders the same; re-sort against rounding.
			slices.SortStableFunc(hits, func(a, b index.Hit) int { return cmp.Compare(b.Score, a.Score) })
			lists[2] = hits
		}
	}
	if on(srcPopular) {
		n := q.Popular
		if in.vec == nil && len(in.hist) == 0 {
			n = max(e.cfg.Candidates, in.k) // no history: popular items are the candidates
		}
		lists[3] = g.popularHits(n, keep)
	}
	if on(srcFresh) {
		lists[4] = g.freshHits(q.Fresh, rc.FreshAge, now, keep)
	}

	pos := sc.pos
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	cands := grow(sc.cands, n)
	defer func() { sc.cands = cands }()
	rr := rank.Retrieval{LexRank: e.cfg.Retrieval.LexicalDepth, DenseRank: q.Content, CoocRank: q.Cooc, ALSRank: q.ALS, PopularRank: q.Popular}
	// The fused score is the personal sources' (content, co-engagement,
	// factorisation): popular and fresh items are candidates for the
	// ranker, not evidence that this user wants them; without a personal
	// list (a cold request) they are all there is, and fuse.
	fused := personalSources
	if len(lists[0])+len(lists[1])+len(lists[2]) == 0 {
		fused = ^uint8(0)
	}
	active := 0
	for s, l := range lists {
		bit := uint8(1) << s
		personal := bit&fused != 0
		if len(l) > 0 && personal {
			active++
		}
		for r, h := range l {
			i, ok := pos[h.ID]
			if !ok {
				i = len(cands)
				pos[h.ID] = i
				cands = append(cands, candidate{id: h.ID, seq: int32(i), ret: rr})
			}
			c := &cands[i]
			c.srcs |= bit
			if personal {
				c.rrf += 1 / (rc.RRFK + float64(r) + 1)
			}
			switch bit {
			case srcContent:
				c.inDense, c.ret.DenseRank, c.ret.DenseScore = true, r, h.Score
			case srcCooc:
				c.ret.CoocRank, c.ret.CoocScore = r, h.Score
			case srcALS:
				c.ret.ALSRank, c.ret.ALSScore = r, h.Score
			case srcPopular:
				c.ret.PopularRank = r
			}
		}
	}
	norm := float64(max(active, 1)) / (rc.RRFK + 1)
	for i := range cands {
		c := &cands[i]
		if in.vec != nil && !c.inDense {
			c.ret.DenseScore = vek32.Dot(in.vec, in.v.vector(c.id))
		}
		if x != nil && c.srcs&srcALS == 0 && int(c.id) < g.als.Len() {
			if alsAll != nil {
				c.ret.ALSScore = alsAll[c.id]
			} else {
				c.ret.ALSScore = g.als.Score(x, c.id)
			}
		}
		if coocRan && c.srcs&srcCooc == 0 {
			c.ret.CoocScore = sc.cf.Value(c.id)
		}
		c.ret.SourceCount = popcount(c.srcs)
		c.ret.Score = float32(c.rrf / norm)
	}
	scaleToBest(cands, func(c *candidate) *float32 { return &c.ret.CoocScore })
	scaleToBest(cands, func(c *candidate) *float32 { return &c.ret.ALSScore })
	sc.sorter.Sort(cands, func(a, b *candidate) int {
		if c := cmp.Compare(b.rrf, a.rrf); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	// The retrieval score is the fused one whichever sources ran, so a
	// ranker trained on one source mix reads it the same on another
	// (each source's own score is a feature of its own).
	for i := range cands {
		cands[i].ret.Rank = i
	}
	relative(cands)
	return cands
}

// scaleToBest divides a source's score of every candidate by the best
// one's (when positive): how a model's scores spread moves with the data
// it was trained on (a factorisation of more interactions scores higher),
// and a ranker trained on one bundle reads the next one's.
func scaleToBest(cands []candidate, score func(*candidate) *float32) {
	var best float32
	for i := range cands {
		best = max(best, *score(&cands[i]))
	}
	if best <= 0 {
		return
	}
	for i := range cands {
		*score(&cands[i]) /= best
	}
}

func popcount(b uint8) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// freshHits are the newest items younger than age that pass keep, newest
// first.
func (g *Generation) freshHits(k int, age time.Duration, now time.Time, keep index.Filter) []index.Hit {
	out := make([]index.Hit, 0, k)
	for _, id := range g.newest {
		it := &g.items[id]
		if it.CreatedAt.IsZero() || now.Sub(it.CreatedAt) > age || len(out) == k {
			break
		}
		if keep == nil || keep(id) {
			out = append(out, index.Hit{ID: id})
		}
	}
	return out
}

// orderKey is an item's place in a descending order: first, then second,
// then the item number ascending.
type orderKey[K cmp.Ordered] struct {
	first, second K
	id            int32
}

// ordered is the item numbers 0..n-1 sorted by key, largest first, ties
// in item-number order: a stable descending sort. The keys are read once
// into one array and sorted there, so a million items' sort does not chase
// each comparison into the catalog (a stable sort of the numbers through
// the items took seconds of a 1M-item load).
func ordered[K cmp.Ordered](n int, key func(i int32) (first, second K)) []int32 {
	keys := make([]orderKey[K], n)
	for i := range keys {
		a, b := key(int32(i))
		keys[i] = orderKey[K]{a, b, int32(i)}
	}
	slices.SortFunc(keys, func(x, y orderKey[K]) int {
		if c := cmp.Compare(y.first, x.first); c != 0 {
			return c
		}
		if c := cmp.Compare(y.second, x.second); c != 0 {
			return c
		}
		return cmp.Compare(x.id, y.id)
	})
	out := make([]int32, n)
	for i := range keys {
		out[i] = keys[i].id
	}
	return out
}

// collab are a generation's collaborative sources (nil fields when the
// bundle has none).
type collab struct {
	cooc     *cf.Neighbours
	als      *cf.Factors
	alsIndex Index
	// alsExact says alsIndex is an exact scan, which recommendCandidates
	// does over the factors themselves (the same order, without the
	// augmented dimension and the re-scoring).
	alsExact bool
}

// openSources orders the popular and fresh sources and loads the
// collaborative ones the bundle in dir has.
func (g *Generation) openSources(dir string) error {
	m := g.Manifest
	used := func(int32) float32 { return 0 }
	if s := m.Sources; s != nil && s.Popular != nil {
		// Decayed use counts from the event log order the popular source;
		// the catalog's popularity breaks ties (and orders the items no
		// one used).
		counts, err := bundle.ReadFloats(filepath.Join(dir, s.Popular.File), 2*len(g.items))
		if err != nil {
			return err
		}
		decayed := counts[:len(g.items)]
		g.uses = counts[len(g.items):]
		used = func(i int32) float32 { return decayed[i] }
	}
	g.popular = ordered(len(g.items), func(i int32) (float64, float64) {
		return float64(used(i)), g.items[i].Popularity
	})
	g.newest = ordered(len(g.items), func(i int32) (int64, int64) {
		t := g.items[i].CreatedAt
		return t.Unix(), int64(t.Nanosecond())
	})

	s := m.Sources
	if s == nil {
		return nil
	}
	var err error
	if s.Neighbours != nil {
		if g.cooc, err = cf.LoadNeighbours(filepath.Join(dir, s.Neighbours.File), len(g.items)); err != nil {
			return err
		}
	}
	if s.Factors != nil {
		if s.FactorsIndex == nil {
			return errors.New("sources: factors without their index")
		}
		if g.als, err = cf.LoadFactors(filepath.Join(dir, s.Factors.File), len(g.items)); err != nil {
			return err
		}
		ix, err := index.Load(filepath.Join(dir, s.FactorsIndex.File))
		if err != nil {
			return fmt.Errorf("sources: %w", err)
		}
		if ix.Len() != len(g.items) || ix.Dim() != g.als.Dim()+1 {
			if c, ok := ix.(io.Closer); ok {
				c.Close()
			}
			return fmt.Errorf("sources: factor index holds %d x %d, want %d x %d", ix.Len(), ix.Dim(), len(g.items), g.als.Dim()+1)
		}
		g.alsIndex = ix
		_, g.alsExact = ix.(*index.Exact)
	}
	return nil
}
