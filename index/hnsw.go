package index

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"unsafe"

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
//
// With int8 quantisation the codes sit beside the vectors in a second
// contiguous slice, a quarter of their size; the walk reads only those and
// the float32 vectors are read once per re-scored candidate.
//
// A loaded index may alias a memory-mapped snapshot file; Close releases
// the mapping.
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

	// quant and codes are set with int8 quantisation (codes n*dim, row
	// major); rescore is Config.Rescore.
	quant   *quantizer
	codes   []int8
	rescore int

	// sample is a fixed pseudo-random set of ids on which a filter is tried
	// to estimate its selectivity per query.
	sample []int32

	mapped *mapping // the snapshot file the slices alias, if any

	pool  sync.Pool // *searcher
	stats counters
}

// NewHNSW builds a graph over n = len(vectors)/dim unit vectors using all
// cores (GOMAXPROCS). Like NewExact it keeps vectors without copying them.
// ctx cancels a long build.
func NewHNSW(ctx context.Context, cfg Config, dim int, vectors []float32) (*HNSW, error) {
	return buildHNSW(ctx, cfg, dim, vectors, runtime.GOMAXPROCS(0))
}

// buildHNSW is NewHNSW on a given number of workers; with one, the graph
// is a function of the vectors alone (tests rely on that).
func buildHNSW(ctx context.Context, cfg Config, dim int, vectors []float32, workers int) (*HNSW, error) {
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
	h.drawLevels(uint64(h.n))
	if err := h.layout(); err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	h.links0 = makeLinks(h.n * (h.m0 + 1))
	h.upper = make([]int32, h.upperLen())
	hugeF32(vectors)
	// The build walks on int8 codes whatever cfg.Quantize says (see
	// builder); they are kept only for an int8 index.
	quant := trainQuantizer(dim, vectors)
	codes := makeCodes(h.n * dim)
	quant.encode(vectors, codes)
	if err := h.build(ctx, workers, quant, codes); err != nil {
		return nil, fmt.Errorf("new hnsw index: %w", err)
	}
	if cfg.Quantize == QuantizeInt8 {
		h.quant, h.codes = quant, codes
	}
	return h, nil
}

func newHNSW(cfg Config, dim, n int, vecs []float32) *HNSW {
	h := &HNSW{
		dim: dim, n: n, m: cfg.M, m0: 2 * cfg.M,
		efConstr: cfg.EfConstruction, efSearch: cfg.EfSearch, exactBelow: cfg.ExactBelow,
		rescore: cfg.Rescore,
		vecs:    vecs,
	}
	h.pool.New = func() any { return newSearcher(h.n, h.dim) }
	r := rand.New(rand.NewPCG(buildSeed, 7))
	h.sample = make([]int32, min(h.n, 128))
	for i := range h.sample {
		h.sample[i] = int32(r.IntN(h.n))
	}
	return h
}

// drawLevels gives every node its top layer, floor(-ln(U) / ln M) for U
// uniform on (0, 1] (the paper's mL = 1/ln M), from a fixed seed and
// stream so the levels are a function of the node count or of stream.
func (h *HNSW) drawLevels(stream uint64) {
	h.levels = make([]uint8, h.n)
	rng := rand.New(rand.NewPCG(buildSeed, stream))
	mL := 1 / math.Log(float64(h.m))
	for i := range h.levels {
		l := int(-math.Log(1-rng.Float64()) * mL)
		h.levels[i] = uint8(min(l, maxLevels-1))
	}
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

// Quantize is the walk's quantisation: QuantizeInt8 or QuantizeNone.
func (h *HNSW) Quantize() string {
	if h.codes != nil {
		return QuantizeInt8
	}
	return QuantizeNone
}

// Vector returns item id's vector. It aliases the index: do not modify it.
func (h *HNSW) Vector(id int32) []float32 {
	i := int(id) * h.dim
	return h.vecs[i : i+h.dim : i+h.dim]
}

// Bytes is the memory the index holds (vectors, codes, links, tables),
// for reporting per-vector cost. Mapped sections count although the
// kernel pages them in only when read.
func (h *HNSW) Bytes() int64 {
	b := int64(len(h.vecs))*4 + int64(len(h.links0))*4 + int64(len(h.upper))*4 +
		int64(len(h.upperOff))*4 + int64(len(h.levels)) + int64(len(h.codes))
	if h.quant != nil {
		b += int64(len(h.quant.scale)) * 4
	}
	return b
}

// Close releases the memory-mapped snapshot a loaded index reads its
// vectors and links from; for a built or decoded index it does nothing.
// Without Close the mapping lasts until the process exits (it is not
// tied to the garbage collector, which cannot know whether a Vector slice
// is still held). It must not race with a search, and the index (and any
// slice Vector returned) must not be used afterwards: the memory is gone.
// Close is idempotent.
func (h *HNSW) Close() error {
	m := h.mapped
	h.mapped = nil
	if m == nil {
		return nil
	}
	h.vecs, h.links0, h.upper, h.levels, h.codes = nil, nil, nil, nil, nil
	return m.close()
}

// dist is the exact search distance: smaller is nearer. For unit vectors
// 1-dot orders like cosine distance; the constant is dropped.
func (h *HNSW) dist(q []float32, id int32) float32 {
	i := int(id) * h.dim
	d := -vek32.Dot(q, h.vecs[i:i+h.dim:i+h.dim])
	if d != d { // NaN from a NaN query: push it to the back, keep the heap sound
		return float32(math.Inf(1))
	}
	return d
}

// query is a search's query in the form the walk scores: the float32
// vector, and its int16 codes when the walk runs on int8 codes.
type query struct {
	f      []float32
	c      []int16 // nil: the walk scores float32
	factor float32 // c . code * factor estimates f . vector
}

// walkQuery prepares q for a walk on codes when codes is non-nil (and q
// can be quantised), on float32 otherwise. It uses s's scratch.
func (s *searcher) walkQuery(qz *quantizer, codes []int8, q []float32) query {
	if codes == nil {
		return query{f: q}
	}
	f, ok := qz.prepare(q, s.qc)
	if !ok {
		return query{f: q}
	}
	return query{f: q, c: s.qc[:len(q)], factor: f}
}

// walkDist scores id on the codes when q has them (codes must then be the
// index's or the builder's), exactly otherwise. Both are negated dot
// products, so they compare with each other only approximately.
func (h *HNSW) walkDist(q *query, codes []int8, id int32) float32 {
	if q.c == nil {
		return h.dist(q.f, id)
	}
	i := int(id) * h.dim
	return -q.factor * float32(dot8(q.c, codes[i:i+h.dim:i+h.dim]))
}

// prefetchWalk starts loading what walkDist will read for id.
func (h *HNSW) prefetchWalk(q *query, codes []int8, id int32) {
	if q.c == nil {
		prefetchVec(unsafe.Pointer(&h.vecs[int(id)*h.dim]), uintptr(h.dim)*4)
		return
	}
	prefetchVec(unsafe.Pointer(&codes[int(id)*h.dim]), uintptr(h.dim))
}

// prefetch starts loading id's float32 vector into cache.
func (h *HNSW) prefetch(id int32) {
	prefetchVec(unsafe.Pointer(&h.vecs[int(id)*h.dim]), uintptr(h.dim)*4)
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
