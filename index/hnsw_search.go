package index

import (
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"
)

// Strategy is how one search was answered.
type Strategy uint8

const (
	// StrategyGraph walked the graph with no filter.
	StrategyGraph Strategy = iota
	// StrategyFilteredGraph walked the graph evaluating the filter during
	// the traversal (failing items still route).
	StrategyFilteredGraph
	// StrategyExact scanned the passing items exactly because the filter's
	// estimated selectivity was below the threshold (or k >= Len()).
	StrategyExact
	// StrategyGraphThenExact started on the graph but ran out of its visit
	// budget (or of reachable nodes) before k items passed, and finished
	// with an exact scan.
	StrategyGraphThenExact
)

func (s Strategy) String() string {
	switch s {
	case StrategyGraph:
		return "graph"
	case StrategyFilteredGraph:
		return "filtered-graph"
	case StrategyExact:
		return "exact"
	case StrategyGraphThenExact:
		return "graph-then-exact"
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// Stats describes one search.
type Stats struct {
	Strategy Strategy
	// Selectivity is the filter's pass rate estimated on a fixed sample
	// (1 without a filter).
	Selectivity float64
	// Ef is the candidate list size used on the graph.
	Ef int
	// Visited counts the vectors scored.
	Visited int
	// Shortfall is k minus the hits returned; non-zero only when fewer than
	// k items pass the filter.
	Shortfall int
	// Rescored counts the candidates of an int8 walk re-scored on float32
	// (0 for a float32 walk or an exact scan).
	Rescored int
}

// Counters are cumulative per-strategy query counts since the index was
// built or loaded.
type Counters struct {
	Graph, FilteredGraph, Exact, GraphThenExact int64
	// Short counts queries that returned fewer than k hits.
	Short int64
}

type counters struct {
	byStrategy [4]atomic.Int64
	short      atomic.Int64
}

// Counters returns the cumulative strategy counters.
func (h *HNSW) Counters() Counters {
	return Counters{
		Graph:          h.stats.byStrategy[StrategyGraph].Load(),
		FilteredGraph:  h.stats.byStrategy[StrategyFilteredGraph].Load(),
		Exact:          h.stats.byStrategy[StrategyExact].Load(),
		GraphThenExact: h.stats.byStrategy[StrategyGraphThenExact].Load(),
		Short:          h.stats.short.Load(),
	}
}

// SetEfSearch changes the search-time candidate list size (a tuning knob
// that does not change the graph). It must not race with searches.
func (h *HNSW) SetEfSearch(ef int) { h.efSearch = max(ef, 1) }

// Settings returns the search settings in use: ef_search and exact_below.
func (h *HNSW) Settings() (efSearch int, exactBelow float64) { return h.efSearch, h.exactBelow }

// SetExactBelow changes the estimated filter pass rate under which a
// search scans the passing items exactly. It must not race with searches.
func (h *HNSW) SetExactBelow(f float64) { h.exactBelow = min(max(f, 0), 1) }

// Search returns up to k items nearest to q that pass filter, ordered by
// score descending then id ascending. It returns k hits whenever k items
// pass. q must have Dim() values (a mismatch panics).
func (h *HNSW) Search(q []float32, k int, filter Filter) []Hit {
	hits, _ := h.SearchStats(q, k, filter)
	return hits
}

// SearchStats is Search that also reports how the query was answered.
func (h *HNSW) SearchStats(q []float32, k int, filter Filter) ([]Hit, Stats) {
	if len(q) != h.dim {
		panic(fmt.Sprintf("index: query has dim %d, index has %d", len(q), h.dim))
	}
	st := Stats{Selectivity: 1}
	if k <= 0 {
		return nil, st
	}
	s := h.pool.Get().(*searcher)
	defer h.pool.Put(s)

	if filter != nil {
		pass := 0
		for _, id := range h.sample {
			if filter(id) {
				pass++
			}
		}
		st.Selectivity = float64(pass) / float64(len(h.sample))
	}
	ef := max(h.efSearch, k)
	// Costs in scored vectors. A filtered walk keeps going until ef items
	// pass, so it scores about ef*m0/(2p) vectors (measured on clustered
	// and low-rank data); a scan calls the filter Len() times (counted as an
	// eighth of a dot product each) and scores the p*Len() passing items.
	exactCost := st.Selectivity*float64(h.n) + float64(h.n)/8
	graphCost := float64(ef*h.m0) / (2 * st.Selectivity)
	var hits []Hit
	switch {
	case k >= h.n || st.Selectivity < h.exactBelow || (filter != nil && exactCost < graphCost):
		// Too few pass for a walk to find k cheaply: scanning the passing
		// items costs Len() filter calls and only their dot products.
		st.Strategy = StrategyExact
		hits, st.Visited = h.scan(s, q, k, filter)
	default:
		st.Ef = ef
		st.Strategy = StrategyGraph
		budget := h.n
		if filter != nil {
			st.Strategy = StrategyFilteredGraph
			// Past twice what a scan would cost, the walk gives up: the
			// estimate was wrong for this query (a filter correlated with
			// the query, or a sample that flattered it).
			budget = max(int(2*exactCost), 4*ef*h.m0)
		}
		wq := s.walkQuery(h.quant, h.codes, q)
		ep, epD := h.entry, h.walkDist(&wq, h.codes, h.entry)
		for lc := h.maxLevel; lc > 0; lc-- {
			ep, epD = h.greedy(&wq, ep, epD, lc)
		}
		pool := 0
		if wq.c != nil {
			pool = h.rescorePool(k)
		}
		st.Visited = s.searchBase(h, &wq, ep, epD, st.Ef, max(pool-ef, 0), filter, budget)
		if len(s.res) < k {
			// The budget ran out, or the walk exhausted the part of the
			// graph reachable from the entry point (pruning can strand a
			// few nodes) before k items passed: finish exactly, so k come
			// back whenever k pass.
			st.Strategy = StrategyGraphThenExact
			var more int
			hits, more = h.scan(s, q, k, filter)
			st.Visited += more
			break
		}
		s.eps = s.res.sortedInto(s.eps[:0])
		if wq.c != nil {
			// All that was pushed out of res is farther than what stayed,
			// so appending it sorted keeps s.eps in walk order.
			n := len(s.eps)
			s.eps = append(s.eps, s.over...)
			slices.SortFunc(s.eps[n:], cmpDistID)
			st.Rescored = h.rescoreBest(s, q, pool)
		}
		hits = make([]Hit, min(k, len(s.eps)))
		for i := range hits {
			hits[i] = Hit{ID: s.eps[i].id, Score: -s.eps[i].d}
		}
		slices.SortFunc(hits, compareHits)
	}
	st.Shortfall = k - len(hits)
	h.stats.byStrategy[st.Strategy].Add(1)
	if st.Shortfall > 0 {
		h.stats.short.Add(1)
	}
	return hits, st
}

// rescorePool is how many candidates of an int8 walk are re-scored for k
// hits: Config.Rescore*k, by default 2k. The codes' error is about the
// size of the gaps between near neighbours, so a true top-k item may rank
// a little below k on them but, measured, never below 2k: at 100k x 384
// (clustered) and 100k x 128 (low rank), ef 10 to 128, re-scoring 2k gave
// the recall@10 of re-scoring every candidate, and 20 where ef = k = 10
// added 0.008 over re-scoring the walk's 10 results alone. When the pool
// exceeds ef, the walk keeps the best it pushed out of its results.
func (h *HNSW) rescorePool(k int) int {
	r := h.rescore
	if r == 0 {
		r = defaultRescore
	}
	return r * k
}

// defaultRescore is rescorePool's multiple of k when Config.Rescore is 0.
const defaultRescore = 2

// rescoreBest re-scores on float32 the best pool of s.eps (the walk's
// results, then the best pushed out of them, each part sorted by walk
// distance), keeps those and sorts them, so the hits and their scores are
// exact. It returns how many it re-scored.
func (h *HNSW) rescoreBest(s *searcher, q []float32, pool int) int {
	e := s.eps[:min(pool, len(s.eps))]
	r := len(e)
	for _, c := range e[:min(prefetchAhead, r)] {
		h.prefetch(c.id)
	}
	for i := range e {
		if i+prefetchAhead < r {
			h.prefetch(e[i+prefetchAhead].id)
		}
		e[i].d = h.dist(q, e[i].id)
	}
	slices.SortFunc(e, cmpDistID)
	s.eps = e
	return r
}

// greedy walks to the nearest node at an upper level (ef = 1). Searches
// run on a finished graph, so no locks.
func (h *HNSW) greedy(q *query, cur int32, curD float32, level int) (int32, float32) {
	for changed := true; changed; {
		changed = false
		l := h.links(cur, level)
		for _, e := range l[1 : 1+l[0]] {
			if d := h.walkDist(q, h.codes, e); d < curD {
				cur, curD, changed = e, d, true
			}
		}
	}
	return cur, curD
}

// scan is the exact answer over the items passing filter: the filter goes
// first, so only passing items pay for a dot product. It scores float32
// even in an int8 index: it promises the exact top k.
// It returns the hits and the number of vectors scored.
func (h *HNSW) scan(s *searcher, q []float32, k int, filter Filter) ([]Hit, int) {
	s.scanHeap = s.scanHeap[:0]
	scored := 0
	for i := range h.n {
		id := int32(i)
		if filter != nil && !filter(id) {
			continue
		}
		d := h.dist(q, id)
		scored++
		if len(s.scanHeap) == k && !(-d > s.scanHeap[0].Score) {
			continue
		}
		s.scanHeap.offer(Hit{ID: id, Score: -d}, k)
	}
	hits := slices.Clone([]Hit(s.scanHeap))
	slices.SortFunc(hits, compareHits)
	return hits, scored
}

// prefetchAhead is how many neighbours ahead of the one being scored have
// their vectors prefetched. Measured at 100k x 384: 1 or 2 beat
// prefetching all neighbours at once by about 15%, which overflows L1.
// Code rows are a quarter of the size, so a walk on codes prefetches
// prefetchAheadCodes ahead: on a random 1M-node graph, 4 scored a step
// in 20% less time than 2, and 8 no less than 4.
const (
	prefetchAhead      = 2
	prefetchAheadCodes = 4
)

// prefetchAhead is the prefetch distance of a walk on q.
func (q *query) prefetchAhead() int {
	if q.c != nil {
		return prefetchAheadCodes
	}
	return prefetchAhead
}

// distID is a node and its distance to the query.
type distID struct {
	d  float32
	id int32
}

// searcher is the per-goroutine scratch of a search: the visited set and
// the two heaps. Searches take one from a pool so the hot path allocates
// nothing but the result.
type searcher struct {
	marks []uint16 // visited when marks[id] == epoch
	epoch uint16
	cand  minDist  // frontier, nearest first
	res   maxDist  // best ef so far, farthest at the root
	over  maxDist  // the best pushed out of res, for re-scoring
	eps   []distID // entry points, then sorted results
	qc    []int16  // the query's int16 codes
	// build scratch
	tmp       []int32
	exact     minDist // candidates with exact distances
	sel, sel2 []distID
	prune     minDist
	scanHeap  minHeap
}

func newSearcher(n, dim int) *searcher {
	return &searcher{marks: make([]uint16, n), qc: make([]int16, dim)}
}

// newEpoch starts a visited set in O(1); the marks are cleared only when
// the 16-bit epoch wraps.
func (s *searcher) newEpoch() {
	s.epoch++
	if s.epoch == 0 {
		clear(s.marks)
		s.epoch = 1
	}
}

// searchBase is Algorithm 2 on layer 0 for a query. Items failing filter
// are scored and routed through like any other but never enter the
// results, so the walk keeps widening until ef passing items are found:
// the effective ef grows by the inverse of the selectivity. It stops early
// after budget scored vectors and returns how many it scored. The best
// extra items pushed out of the ef results are kept in s.over, more
// candidates for re-scoring that cost no further steps.
func (s *searcher) searchBase(h *HNSW, q *query, ep int32, epD float32, ef, extra int, filter Filter, budget int) int {
	s.newEpoch()
	s.cand, s.res, s.over = s.cand[:0], s.res[:0], s.over[:0]
	s.marks[ep] = s.epoch
	s.cand.push(distID{epD, ep})
	if filter == nil || filter(ep) {
		s.res.push(distID{epD, ep})
	}
	visited := 1
	stride := h.m0 + 1
	for len(s.cand) > 0 {
		c := s.cand.pop()
		if len(s.res) >= ef && c.d > s.res[0].d {
			break
		}
		off := int(c.id) * stride
		l := h.links0[off : off+stride : off+stride]
		// Pick the unvisited neighbours first, then score them while the
		// vectors prefetchAhead places further on are being loaded: the
		// walk is bound by memory latency, not by the dot products.
		s.tmp = s.tmp[:0]
		for _, e := range l[1 : 1+l[0]] {
			if s.marks[e] != s.epoch {
				s.marks[e] = s.epoch
				s.tmp = append(s.tmp, e)
			}
		}
		ahead := q.prefetchAhead()
		for _, e := range s.tmp[:min(ahead, len(s.tmp))] {
			h.prefetchWalk(q, h.codes, e)
		}
		for j, e := range s.tmp {
			if j+ahead < len(s.tmp) {
				h.prefetchWalk(q, h.codes, s.tmp[j+ahead])
			}
			d := h.walkDist(q, h.codes, e)
			visited++
			if len(s.res) < ef || d < s.res[0].d {
				s.cand.push(distID{d, e})
				switch {
				case filter != nil && !filter(e):
				case len(s.res) < ef:
					s.res.push(distID{d, e})
				default:
					out := s.res[0]
					s.res.replaceTop(distID{d, e})
					if extra > 0 {
						switch {
						case len(s.over) < extra:
							s.over.push(out)
						case out.d < s.over[0].d:
							s.over.replaceTop(out)
						}
					}
				}
			}
		}
		if len(s.cand) > 0 {
			// The next candidate's link row, needed on the next turn.
			off := int(s.cand[0].id) * stride
			prefetchVec(unsafe.Pointer(&h.links0[off]), uintptr(stride)*4)
		}
		if visited >= budget {
			return visited
		}
	}
	return visited
}
