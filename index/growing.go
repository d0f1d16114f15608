package index

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrFull is returned by Growing.Add once the index holds Cap() vectors.
var ErrFull = errors.New("growing index full")

// The published state packs the node count, the top level and the entry
// point into one word, so a reader loads all three from the same moment:
// an entry point loaded apart from its level could be walked at a level
// it does not have, through another node's link block.
const (
	stateCountBits = 32
	stateLevelBits = 4
	// maxGrowing is the largest capacity: entry ids get the bits left.
	maxGrowing = 1 << (64 - stateCountBits - stateLevelBits)
)

// Levels must fit their bits: this fails to compile if maxLevels grows.
var _ [1<<stateLevelBits - maxLevels]struct{}

// growingStream is the level generator's stream. buildHNSW seeds with the
// node count; a Growing must not, so that replicas sized differently still
// draw the same level for the same id and build the same graph.
const growingStream = 0x6709_11e5

// Growing is an append-only HNSW for items inserted between rebuilds of
// the read-only index: one writer adds vectors while any number of
// goroutines search, without locks.
//
// It is an HNSW preallocated for Cap() nodes (levels, link blocks and the
// vector arena never move, so a reader never sees a slice being replaced)
// grown with the builder's insertion, whose link words are written and
// read atomically (see builder). Searches walk with the builder's walks
// for the same reason; HNSW's own search reads links without atomics,
// which is sound only on a finished graph. The walk scores float32: a
// delta is small, and codes trained on its first vectors would fit the
// later ones badly.
//
// A node becomes visible to searches only when Add publishes it, after
// its links are in place. A walk may still pass through the node being
// inserted (its neighbours link to it before it is published): its vector
// was written before any link to it, so routing through it is sound, and
// it is left out of the results.
//
// The graph is a function of the sequence of vectors added: two replicas
// applying the same updates answer every query identically.
type Growing struct {
	h  *HNSW
	b  *builder
	ws *searcher // the writer's scratch

	// n is the writer's count; readers use state.
	n     int
	state atomic.Uint64
}

// NewGrowing preallocates a Growing for capacity vectors of dimension dim.
// It uses cfg.M, cfg.EfConstruction and cfg.EfSearch, validated as for an
// hnsw backend whatever cfg.Backend says (a Growing is always a graph);
// cfg.Quantize is not used, the walk scores float32.
func NewGrowing(cfg Config, dim, capacity int) (*Growing, error) {
	cfg.Backend = BackendHNSW
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new growing index: %w", err)
	}
	switch {
	case dim <= 0 || dim > MaxDim:
		return nil, fmt.Errorf("new growing index: %w: dim %d outside 1..%d", ErrInvalid, dim, MaxDim)
	case capacity < 1 || capacity > maxGrowing:
		return nil, fmt.Errorf("new growing index: capacity %d outside 1..%d", capacity, maxGrowing)
	}
	vecs := make([]float32, capacity*dim)
	hugeF32(vecs)
	h := newHNSW(cfg, dim, capacity, vecs)
	h.drawLevels(growingStream)
	if err := h.layout(); err != nil {
		return nil, fmt.Errorf("new growing index: %w", err)
	}
	// layout sets the entry point of the full graph; nodes join one by
	// one, so the first added is the first entry point.
	h.entry, h.maxLevel = 0, 0
	h.links0 = makeLinks(capacity * (h.m0 + 1))
	h.upper = make([]int32, h.upperLen())
	return &Growing{
		h:  h,
		b:  &builder{h: h, locks: make([]sync.Mutex, capacity)},
		ws: newSearcher(capacity, dim),
	}, nil
}

// Add inserts vec and returns its id: 0, 1, 2, ... in the order of the
// calls. vec must have Dim() values and be unit length (or zero), as for
// NewExact; it is copied. Add is the single writer: calls must not
// overlap (callers serialise them), but searches may run at any time.
// At capacity it returns ErrFull.
func (g *Growing) Add(vec []float32) (int32, error) {
	h := g.h
	if err := checkUnit(vec, h.dim); err != nil {
		return 0, fmt.Errorf("growing add: %w", err)
	}
	if g.n == h.n {
		return 0, fmt.Errorf("growing add: %w (capacity %d)", ErrFull, h.n)
	}
	id := int32(g.n)
	copy(h.vecs[g.n*h.dim:(g.n+1)*h.dim], vec)
	if id == 0 {
		h.entry, h.maxLevel = 0, int(h.levels[0])
	} else {
		g.b.insert(g.ws, id)
	}
	g.n++
	g.state.Store(uint64(g.n) | uint64(h.maxLevel)<<stateCountBits | uint64(h.entry)<<(stateCountBits+stateLevelBits))
	return id, nil
}

// checkUnit applies NewExact's input checks to one vector.
func checkUnit(v []float32, dim int) error {
	if len(v) != dim {
		return fmt.Errorf("%w: vector has %d values, want dim %d", ErrInvalid, len(v), dim)
	}
	var ss float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: vector has a non-finite value", ErrInvalid)
		}
		ss += float64(x) * float64(x)
	}
	if ss != 0 && math.Abs(math.Sqrt(ss)-1) > normTolerance {
		return fmt.Errorf("%w: vector has norm %.4g, want 1 (normalise embeddings)", ErrInvalid, math.Sqrt(ss))
	}
	return nil
}

// published unpacks the state: the node count, the entry point and its
// level. Nodes below the count are complete and never change again.
func (g *Growing) published() (n int, entry int32, top int) {
	s := g.state.Load()
	return int(s & (1<<stateCountBits - 1)),
		int32(s >> (stateCountBits + stateLevelBits)),
		int(s >> stateCountBits & (1<<stateLevelBits - 1))
}

// Len is the number of vectors published to searches.
func (g *Growing) Len() int {
	n, _, _ := g.published()
	return n
}

// Cap is the number of vectors the index was sized for.
func (g *Growing) Cap() int { return g.h.n }

// Dim is the vector dimension.
func (g *Growing) Dim() int { return g.h.dim }

// Vector returns vector id, which must be below Len(). It aliases the
// index: do not modify it.
func (g *Growing) Vector(id int32) []float32 {
	if n := g.Len(); id < 0 || int(id) >= n {
		panic(fmt.Sprintf("index: growing vector %d of %d published", id, n))
	}
	return g.h.Vector(id)
}

// Bytes is the memory the index holds, all of it allocated for Cap()
// nodes up front.
func (g *Growing) Bytes() int64 {
	return g.h.Bytes() + int64(len(g.b.locks))*int64(unsafe.Sizeof(sync.Mutex{})) + int64(len(g.ws.marks))*2
}

// Search returns up to k published items nearest to q that pass keep
// (nil keeps all), ordered by score (the dot product) descending, then id
// ascending. It returns k hits whenever k published items pass. It is
// safe concurrently with Add and other searches. q must have Dim() values
// (a mismatch panics).
func (g *Growing) Search(q []float32, k int, keep Filter) []Hit {
	hits, _ := g.searchAbove(q, k, float32(math.Inf(-1)), keep)
	return hits
}

// SearchAbove is Search for hits scoring above min only: what a caller
// merging these hits with another index's k best needs, min being the
// worst of those (a hit at or below it could not enter the merged top k).
// The filter then runs only for items above min, so a delta searched
// beside a much larger index costs about its dot products.
func (g *Growing) SearchAbove(q []float32, k int, min float32, keep Filter) []Hit {
	hits, _ := g.searchAbove(q, k, min, keep)
	return hits
}

// SearchStats is Search that also reports how the query was answered:
// Strategy, Ef and Shortfall are set (the walk neither counts its visits
// nor estimates the filter's selectivity). A filtered walk is
// StrategyFilteredGraph, and StrategyGraphThenExact when fewer than k of
// its results passed.
func (g *Growing) SearchStats(q []float32, k int, keep Filter) ([]Hit, Stats) {
	return g.searchAbove(q, k, float32(math.Inf(-1)), keep)
}

// scanBelow is the graph size under which a filtered search scans: a walk
// of ef on a graph of fewer than scanBelow*ef nodes scores most of them,
// and then, a filter passing fewer than k of its results, scans anyway.
const scanBelow = 8

func (g *Growing) searchAbove(q []float32, k int, above float32, keep Filter) ([]Hit, Stats) {
	h := g.h
	if len(q) != h.dim {
		panic(fmt.Sprintf("index: query has dim %d, index has %d", len(q), h.dim))
	}
	n, entry, top := g.published()
	st := Stats{Strategy: StrategyExact}
	if k <= 0 || n == 0 {
		st.Shortfall = max(k, 0)
		return nil, st
	}
	ef := max(h.efSearch, k)
	if k >= n || n <= ef || (keep != nil && n < scanBelow*ef) {
		// A walk with ef >= n scores about every node anyway, and a scan
		// is exact.
		hits := g.scan(q, n, k, above, keep)
		st.Shortfall = k - len(hits)
		return hits, st
	}
	st.Strategy, st.Ef = StrategyGraph, ef
	if keep != nil {
		st.Strategy = StrategyFilteredGraph
	}
	s := h.pool.Get().(*searcher)
	defer h.pool.Put(s)
	wq := query{f: q}
	cur, curD := entry, h.dist(q, entry)
	for lc := top; lc > 0; lc-- {
		cur, curD = g.b.greedy(s, &wq, cur, curD, lc)
	}
	s.eps = append(s.eps[:0], distID{curD, cur})
	g.b.searchLayer(s, &wq, ef, 0)
	// The walk scored float32, so its distances are the exact scores.
	s.eps = s.res.sortedInto(s.eps[:0])
	hits := make([]Hit, 0, k)
	for _, c := range s.eps {
		if -c.d <= above {
			// Every later candidate scores lower: the walk found what is
			// above the bound (as far as a walk finds anything).
			return hits, st
		}
		if int(c.id) >= n || (keep != nil && !keep(c.id)) {
			continue
		}
		hits = append(hits, Hit{ID: c.id, Score: -c.d})
		if len(hits) == k {
			return hits, st
		}
	}
	// The filter passed fewer than k of the walk's ef nearest (the walk
	// does not widen for a filter: the builder's walk knows none), or the
	// walk reached fewer than k published nodes: the passing items are
	// found by a scan, which a delta is small enough for.
	st.Strategy = StrategyGraphThenExact
	hits = g.scan(q, n, k, above, keep)
	st.Shortfall = k - len(hits)
	return hits, st
}

// scan is the exact answer over the first n nodes, of those scoring above
// the bound. As in Exact.Search, keep runs only for items that would enter
// the current top k.
func (g *Growing) scan(q []float32, n, k int, above float32, keep Filter) []Hit {
	top := make(minHeap, 0, min(k, n))
	for i := range n {
		id := int32(i)
		s := -g.h.dist(q, id)
		if !(s > above) || (len(top) == k && !(s > top[0].Score)) {
			continue
		}
		if keep != nil && !keep(id) {
			continue
		}
		top.offer(Hit{ID: id, Score: s}, k)
	}
	slices.SortFunc(top, compareHits)
	return top
}
