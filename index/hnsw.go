package index

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/viterin/vek/vek32"
)

// maxLevels caps the layer count: with mL = 1/ln M a level above 16 has
// probability M^-16, so the cap only guards against a corrupt snapshot.
const maxLevels = 16

// buildSeed fixes level assignment so two builds of the same vectors draw
// the same levels (the parallel insertion order still varies).
const buildSeed = 0x5eed_4a5b

// HNSW is a hierarchical navigable small world graph (Malkov and Yashunin,
// 2016) over unit vectors, scored by dot product. It is built once and
// read-only afterwards, so searches need no locks.
//
// Layout is chosen for the per-query cost: vectors in one contiguous slice,
// layer-0 links in one flat []int32 with a fixed stride (count, then up to
// 2*M ids), upper-layer links in a second flat slice reached through a
// per-node offset. Nothing on the search path is a pointer per node.
type HNSW struct {
	dim, n     int
	m, m0      int // link caps: m above layer 0, m0 = 2*m at layer 0
	efConstr   int
	efSearch   int
	exactBelow float64

	vecs     []float32
	levels   []uint8
	links0   []int32 // n*(m0+1)
	upperOff []int32 // node -> start of its level-1 block in upper, -1 for level 0
	upper    []int32 // per node, one (m+1) block per level >= 1
	entry    int32
	maxLevel int

	// sample is a fixed pseudo-random set of ids on which a filter is tried
	// to estimate its selectivity per query.
	sample []int32

	pool  sync.Pool // *searcher
	stats counters
}

// NewHNSW builds a graph over n = len(vectors)/dim unit vectors using all
// cores (GOMAXPROCS). Like NewExact it keeps vectors without copying them.
// ctx cancels a long build.
func NewHNSW(ctx context.Context, cfg Config, dim int, vectors []float32) (*HNSW, error) {
	if cfg.Backend == "" {
		cfg.Backend = BackendHNSW
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	ex, err := NewExact(dim, vectors) // the same input checks
	if err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	h := newHNSW(cfg, dim, ex.n, vectors)
	h.levels = make([]uint8, h.n)
	rng := rand.New(rand.NewPCG(buildSeed, uint64(h.n)))
	mL := 1 / math.Log(float64(h.m))
	for i := range h.levels {
		l := int(-math.Log(1-rng.Float64()) * mL)
		h.levels[i] = uint8(min(l, maxLevels-1))
	}
	if err := h.layout(); err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	h.links0 = make([]int32, h.n*(h.m0+1))
	h.upper = make([]int32, h.upperLen())
	if err := h.build(ctx, runtime.GOMAXPROCS(0)); err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	return h, nil
}

func newHNSW(cfg Config, dim, n int, vecs []float32) *HNSW {
	h := &HNSW{
		dim: dim, n: n, m: cfg.M, m0: 2 * cfg.M,
		efConstr: cfg.EfConstruction, efSearch: cfg.EfSearch, exactBelow: cfg.ExactBelow,
		vecs: vecs,
	}
	h.pool.New = func() any { return newSearcher(h.n) }
	r := rand.New(rand.NewPCG(buildSeed, 7))
	h.sample = make([]int32, min(h.n, 128))
	for i := range h.sample {
		h.sample[i] = int32(r.IntN(h.n))
	}
	return h
}

// layout derives upperOff from levels and the top of the graph.
func (h *HNSW) layout() error {
	h.upperOff = make([]int32, h.n)
	off := 0
	h.maxLevel, h.entry = -1, 0
	for i, l := range h.levels {
		if int(l) > h.maxLevel {
			h.maxLevel, h.entry = int(l), int32(i)
		}
		if l == 0 {
			h.upperOff[i] = -1
			continue
		}
		h.upperOff[i] = int32(off)
		off += int(l) * (h.m + 1)
		if off > math.MaxInt32 {
			return fmt.Errorf("upper layers need %d links, more than int32 offsets reach", off)
		}
	}
	return nil
}

func (h *HNSW) upperLen() int {
	total := 0
	for _, l := range h.levels {
		total += int(l) * (h.m + 1)
	}
	return total
}

// Len is the number of items.
func (h *HNSW) Len() int { return h.n }

// Dim is the vector dimension.
func (h *HNSW) Dim() int { return h.dim }

// Vector returns item id's vector. It aliases the index: do not modify it.
func (h *HNSW) Vector(id int32) []float32 {
	i := int(id) * h.dim
	return h.vecs[i : i+h.dim : i+h.dim]
}

// Bytes is the memory the index holds (vectors, links, tables), for
// reporting per-vector cost.
func (h *HNSW) Bytes() int64 {
	return int64(len(h.vecs))*4 + int64(len(h.links0))*4 + int64(len(h.upper))*4 +
		int64(len(h.upperOff))*4 + int64(len(h.levels))
}

// dist is the search distance: smaller is nearer. For unit vectors
// 1-dot orders like cosine distance; the constant is dropped.
func (h *HNSW) dist(q []float32, id int32) float32 {
	i := int(id) * h.dim
	d := -vek32.Dot(q, h.vecs[i:i+h.dim:i+h.dim])
	if d != d { // NaN from a NaN query: push it to the back, keep the heap sound
		return float32(math.Inf(1))
	}
	return d
}

// links returns id's link block at level: element 0 is the count, then the
// ids. It aliases the graph.
func (h *HNSW) links(id int32, level int) []int32 {
	if level == 0 {
		i := int(id) * (h.m0 + 1)
		return h.links0[i : i+h.m0+1 : i+h.m0+1]
	}
	i := int(h.upperOff[id]) + (level-1)*(h.m+1)
	return h.upper[i : i+h.m+1 : i+h.m+1]
}

// builder holds the state only construction needs: a lock per node (its
// link lists change while others read them) and one for the entry point.
type builder struct {
	h      *HNSW
	locks  []sync.Mutex
	global sync.Mutex
}

func (h *HNSW) build(ctx context.Context, workers int) error {
	b := &builder{h: h, locks: make([]sync.Mutex, h.n)}
	// Node 0 starts the graph alone; the real entry point is adopted when
	// its own insertion runs (its level exceeds the current top).
	h.entry, h.maxLevel = 0, int(h.levels[0])
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSearcher(h.n)
			for {
				i := next.Add(1) - 1
				if i >= int64(h.n) {
					return
				}
				if i%1024 == 0 && ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				b.insert(s, int32(i))
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// insert adds q following the paper's Algorithm 1: greedy descent through
// the layers above q's level, then at each of q's layers an efConstruction
// search, heuristic neighbour selection, and reverse links (pruned with the
// same heuristic when full).
func (b *builder) insert(s *searcher, q int32) {
	h := b.h
	level := int(h.levels[q])
	b.global.Lock()
	ep, top := h.entry, h.maxLevel
	if level <= top {
		b.global.Unlock()
	} else {
		// q becomes the entry point: hold the lock so no insertion starts
		// from a top layer q has not joined yet. Rare (probability 1/M).
		defer b.global.Unlock()
	}
	vq := h.Vector(q)
	cur, curD := ep, h.dist(vq, ep)
	for lc := top; lc > level; lc-- {
		cur, curD = b.greedy(s, vq, cur, curD, lc)
	}
	s.eps = append(s.eps[:0], distID{curD, cur})
	for lc := min(level, top); lc >= 0; lc-- {
		s.searchLayer(h, vq, s.eps, h.efConstr, lc, b.locks)
		s.eps = s.res.sortedInto(s.eps[:0])
		sel := b.selectHeuristic(s, s.eps, h.m, s.sel[:0])
		s.sel = sel
		b.locks[q].Lock()
		l := h.links(q, lc)
		l[0] = int32(len(sel))
		for i, c := range sel {
			l[1+i] = c.id
		}
		b.locks[q].Unlock()
		for _, c := range sel {
			b.connect(s, c.id, q, c.d, lc)
		}
	}
	if level > top {
		h.entry, h.maxLevel = q, level
	}
}

// greedy walks to the nearest node at level from cur (ef = 1).
func (b *builder) greedy(s *searcher, vq []float32, cur int32, curD float32, level int) (int32, float32) {
	h := b.h
	for changed := true; changed; {
		changed = false
		b.locks[cur].Lock()
		l := h.links(cur, level)
		s.tmp = append(s.tmp[:0], l[1:1+l[0]]...)
		b.locks[cur].Unlock()
		for _, e := range s.tmp {
			if d := h.dist(vq, e); d < curD {
				cur, curD, changed = e, d, true
			}
		}
	}
	return cur, curD
}

// selectHeuristic is the paper's Algorithm 4 without extension: walk the
// candidates nearest first and keep one only if it is nearer to the base
// than to every neighbour kept so far. It spreads links across directions,
// which keeps clustered data navigable. cands must be sorted ascending.
func (b *builder) selectHeuristic(s *searcher, cands []distID, m int, out []distID) []distID {
	h := b.h
	for _, c := range cands {
		if len(out) == m {
			break
		}
		vc := h.Vector(c.id)
		keep := true
		for _, r := range out {
			if h.dist(vc, r.id) < c.d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c)
		}
	}
	return out
}

// connect adds the reverse link e -> q at level, re-selecting e's links
// with the heuristic when the list is full.
func (b *builder) connect(s *searcher, e, q int32, d float32, level int) {
	h := b.h
	mx := h.m
	if level == 0 {
		mx = h.m0
	}
	b.locks[e].Lock()
	defer b.locks[e].Unlock()
	l := h.links(e, level)
	n := int(l[0])
	if n < mx {
		l[1+n] = q
		l[0]++
		return
	}
	ve := h.Vector(e)
	s.prune = append(s.prune[:0], distID{d, q})
	for _, x := range l[1 : 1+n] {
		s.prune = append(s.prune, distID{h.dist(ve, x), x})
	}
	slices.SortFunc(s.prune, cmpDistID)
	sel := b.selectHeuristic(s, s.prune, mx, s.sel2[:0])
	s.sel2 = sel
	l[0] = int32(len(sel))
	for i, c := range sel {
		l[1+i] = c.id
	}
}

func cmpDistID(a, b distID) int {
	switch {
	case a.d < b.d:
		return -1
	case a.d > b.d:
		return 1
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}
