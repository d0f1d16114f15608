package index

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/viterin/vek/vek32"
)

// MaxDim bounds the embedding dimension; anything larger is a corrupt
// header or a configuration mistake, not a real embedding.
const MaxDim = 1 << 16

// normTolerance is how far from 1 a vector's L2 norm may be. Scores are dot
// products, which equal cosine similarity only for unit vectors, so a
// non-normalised input would silently skew every ranking.
const normTolerance = 1e-3

// Filter reports whether the item may be returned. nil lets every item
// through. Filters may be expensive (compiled rule expressions), so indexes
// call them only for items that would otherwise enter the result.
type Filter func(id int32) bool

// Hit is one search result. For unit vectors Score is the cosine similarity.
type Hit struct {
	ID    int32
	Score float32
}

// Exact answers top-k queries by scoring every item. It is exact, so it is
// both the default for small catalogs and the yardstick for recall of the
// approximate indexes.
type Exact struct {
	dim    int
	n      int
	vecs   []float32 // row-major, n*dim; never written after construction
	mapped *mapping  // the snapshot file vecs aliases, if loaded
}

// Close releases the memory-mapped snapshot a loaded index reads its
// vectors from; for a built or decoded index it does nothing. The rules
// are HNSW.Close's: not while a search runs, no use afterwards, idempotent.
func (e *Exact) Close() error {
	m := e.mapped
	e.mapped = nil
	if m == nil {
		return nil
	}
	e.vecs = nil
	return m.close()
}

// ErrInvalid is wrapped by every NewExact error.
var ErrInvalid = errors.New("invalid vectors")

// NewExact builds an exact index over n = len(vectors)/dim unit vectors
// stored row-major. The index keeps vectors (it does not copy them, since
// catalogs reach gigabytes); the caller must not modify them afterwards.
// Zero vectors are accepted (an item without text) and score 0.
func NewExact(dim int, vectors []float32) (*Exact, error) {
	switch {
	case dim <= 0 || dim > MaxDim:
		return nil, fmt.Errorf("new exact index: %w: dim %d outside 1..%d", ErrInvalid, dim, MaxDim)
	case len(vectors) == 0:
		return nil, fmt.Errorf("new exact index: %w: no vectors", ErrInvalid)
	case len(vectors)%dim != 0:
		return nil, fmt.Errorf("new exact index: %w: %d values is not a multiple of dim %d", ErrInvalid, len(vectors), dim)
	case len(vectors)/dim > math.MaxInt32:
		return nil, fmt.Errorf("new exact index: %w: %d vectors exceed int32 ids", ErrInvalid, len(vectors)/dim)
	}
	n := len(vectors) / dim
	for i := range n {
		v := vectors[i*dim : (i+1)*dim]
		// The SIMD sum of squares is finite only if every value is, and
		// close enough to the float64 sum for the tolerance: it checks
		// 1M x 128 in 80-90 ms where the float64 loop took 320-350 ms, a
		// good part of a mapped load. Only a vector it rejects is looked
		// at closely, for the message.
		if ss := vek32.Dot(v, v); ss != 0 && math.Abs(math.Sqrt(float64(ss))-1) <= normTolerance {
			continue
		}
		var ss float64
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("new exact index: %w: vector %d has a non-finite value", ErrInvalid, i)
			}
			ss += float64(x) * float64(x)
		}
		if ss != 0 && math.Abs(math.Sqrt(ss)-1) > normTolerance {
			return nil, fmt.Errorf("new exact index: %w: vector %d has norm %.4g, want 1 (normalise embeddings)", ErrInvalid, i, math.Sqrt(ss))
		}
	}
	return &Exact{dim: dim, n: n, vecs: vectors}, nil
}

// Len is the number of items.
func (e *Exact) Len() int { return e.n }

// Dim is the vector dimension.
func (e *Exact) Dim() int { return e.dim }

// Vector returns item id's vector. It aliases the index: do not modify it.
func (e *Exact) Vector(id int32) []float32 {
	i := int(id) * e.dim
	return e.vecs[i : i+e.dim : i+e.dim]
}

// Search returns the k items with the highest dot product with q that pass
// filter, ordered by score descending and then id ascending. Fewer than k
// come back only when fewer than k items pass. filter runs only for items
// whose score would enter the current top k, so a selective, costly filter
// is paid for rarely. q must have Dim() values (a mismatch is a programming
// error and panics) and should be unit length.
func (e *Exact) Search(q []float32, k int, filter Filter) []Hit {
	if len(q) != e.dim {
		panic(fmt.Sprintf("index: query has dim %d, index has %d", len(q), e.dim))
	}
	if k <= 0 {
		return nil
	}
	h := make(minHeap, 0, min(k, e.n))
	var block [scanBlock]float32
	for base := 0; base < e.n; base += scanBlock {
		scores := block[:min(scanBlock, e.n-base)]
		dotRows(q, e.vecs[base*e.dim:], scores)
		h.offerAll(scores, base, k, filter)
	}
	slices.SortFunc(h, compareHits)
	return h
}

// TopK is the k best items that pass filter when item i scores scores[i],
// best first, ties to the lower id: Exact.Search's answer for scores
// computed elsewhere (a caller that needs every item's score anyway).
func TopK(scores []float32, k int, filter Filter) []Hit {
	if k <= 0 {
		return nil
	}
	h := make(minHeap, 0, min(k, len(scores)))
	h.offerAll(scores, 0, k, filter)
	slices.SortFunc(h, compareHits)
	return h
}

// DotRows sets out[i] to vek32.Dot(q, rows[i*len(q):(i+1)*len(q)]) for
// every row, bit for bit, faster than a call per row (see dotRows).
func DotRows(q, rows, out []float32) { dotRows(q, rows, out) }

// offerAll offers items base, base+1, ... scored scores, keeping the best
// k that pass filter (which runs only for an item good enough to enter).
func (h *minHeap) offerAll(scores []float32, base, k int, filter Filter) {
	negInf := float32(math.Inf(-1))
	for j, s := range scores {
		if s != s { // NaN (from a NaN query) would break the ordering
			s = negInf
		}
		// Ids arrive in ascending order, so an equal score never beats
		// the current worst: ties keep the lower id, as the ordering
		// promises.
		if len(*h) == k && !(s > (*h)[0].Score) {
			continue
		}
		if i := int32(base + j); filter == nil || filter(i) {
			h.offer(Hit{ID: i, Score: s}, k)
		}
	}
}

// scanBlock is how many rows the exact scan scores per kernel call.
const scanBlock = 256

// compareHits orders by score descending, then id ascending.
func compareHits(a, b Hit) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}

// minHeap keeps the best k hits seen so far with the worst at the root.
// Hand-written rather than container/heap to avoid boxing every hit in an
// interface on the hot path.
type minHeap []Hit

// worse reports whether a ranks below b.
func worse(a, b Hit) bool {
	return a.Score < b.Score || (a.Score == b.Score && a.ID > b.ID)
}

func (h *minHeap) offer(x Hit, k int) {
	s := *h
	if len(s) < k {
		s = append(s, x)
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(s[i], s[p]) {
				break
			}
			s[i], s[p] = s[p], s[i]
			i = p
		}
		*h = s
		return
	}
	s[0] = x
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && worse(s[l], s[m]) {
			m = l
		}
		if r < len(s) && worse(s[r], s[m]) {
			m = r
		}
		if m == i {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}

// Normalize scales each dim-sized row of vectors to unit length in place,
// leaving zero rows as they are.
func Normalize(vectors []float32, dim int) {
	for i := 0; i+dim <= len(vectors); i += dim {
		v := vectors[i : i+dim]
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for j := range v {
			v[j] *= inv
		}
	}
}
