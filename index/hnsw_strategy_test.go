package index

import (
	"context"
	"slices"
	"testing"
)

// strategyGraph is a private graph built on one worker, so its links are
// reproducible and a test may change its settings or cut links without
// disturbing the shared one.
func strategyGraph(t *testing.T) (*HNSW, *Exact, []float32) {
	t.Helper()
	const n, dim = 2000, 16
	vecs, err := GenVectors(DistClustered, n, dim, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := GenVectors(DistClustered, 20, dim, 5, 1)
	h, err := buildHNSW(context.Background(), DefaultConfig(), dim, vecs, 1)
	if err != nil {
		t.Fatal(err)
	}
	return h, mustExact(t, dim, vecs), qs
}

// counted is the change in h's counters while fn runs.
func counted(h *HNSW, fn func()) Counters {
	before := h.Counters()
	fn()
	after := h.Counters()
	return Counters{
		Graph:          after.Graph - before.Graph,
		FilteredGraph:  after.FilteredGraph - before.FilteredGraph,
		Exact:          after.Exact - before.Exact,
		GraphThenExact: after.GraphThenExact - before.GraphThenExact,
		Short:          after.Short - before.Short,
	}
}

// sampleRate is the selectivity SearchStats will estimate for f.
func sampleRate(h *HNSW, f Filter) float64 {
	pass := 0
	for _, id := range h.sample {
		if f(id) {
			pass++
		}
	}
	return float64(pass) / float64(len(h.sample))
}

// TestHNSW_SearchStrategy pins which strategy answers a query and that
// each is counted once under its own name (the server exports the counters
// as recsys_index_searches_total{strategy}).
func TestHNSW_SearchStrategy(t *testing.T) {
	h, ex, qs := strategyGraph(t)
	dim := h.Dim()
	// About 30% pass: the cost model walks this filter when ef is small,
	// so only exact_below can send it to a scan.
	third := func(id int32) bool { return passEvery(10)(id) || passEvery(10)(id+1) || passEvery(10)(id+2) }
	est := sampleRate(h, third)
	if est < 0.15 || est > 0.5 {
		t.Fatalf("the sample estimates %.2f for the 30%% filter", est)
	}
	tests := []struct {
		name       string
		ef         int
		exactBelow float64
		filter     Filter
		want       Strategy
	}{
		// ef*m0/2 exceeds the scan's cost here, which the cost model only
		// weighs for a filter: an unfiltered query always walks.
		{name: "no filter, large ef", ef: 256, exactBelow: 0.02, want: StrategyGraph},
		{name: "no filter", ef: 10, exactBelow: 0.02, want: StrategyGraph},
		{name: "permissive filter", ef: 10, exactBelow: 0.02, filter: func(id int32) bool { return id%10 != 0 }, want: StrategyFilteredGraph},
		{name: "filter above exact_below", ef: 10, exactBelow: est - 0.01, filter: third, want: StrategyFilteredGraph},
		{name: "filter below exact_below", ef: 10, exactBelow: est + 0.01, filter: third, want: StrategyExact},
		{name: "selective filter", ef: 10, exactBelow: 0.02, filter: passEvery(50), want: StrategyExact},
		// 30% pass but ef is large: the walk would score more vectors than
		// a scan of the passing items.
		{name: "filter the cost model scans", ef: 256, exactBelow: 0.02, filter: third, want: StrategyExact},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.SetEfSearch(tt.ef)
			h.SetExactBelow(tt.exactBelow)
			for qi := range 5 {
				q := qs[qi*dim : (qi+1)*dim]
				var hits []Hit
				var st Stats
				got := counted(h, func() { hits, st = h.SearchStats(q, 10, tt.filter) })
				if st.Strategy != tt.want {
					t.Fatalf("query %d: strategy %v (selectivity %.3f), want %v", qi, st.Strategy, st.Selectivity, tt.want)
				}
				var want Counters
				switch tt.want {
				case StrategyGraph:
					want.Graph = 1
				case StrategyFilteredGraph:
					want.FilteredGraph = 1
				case StrategyExact:
					want.Exact = 1
				}
				if got != want {
					t.Fatalf("query %d: counters moved by %+v, want %+v", qi, got, want)
				}
				if len(hits) != 10 {
					t.Fatalf("query %d: %d hits", qi, len(hits))
				}
				checkHits(t, hits, tt.filter)
				if tt.want == StrategyExact && !slices.Equal(hits, ex.Search(q, 10, tt.filter)) {
					t.Fatalf("query %d: an exact scan answered %v, Exact %v", qi, hits, ex.Search(q, 10, tt.filter))
				}
			}
		})
	}
}

// strand cuts every link to the nodes in cut, so no walk from the entry
// point reaches them.
func strand(h *HNSW, cut map[int32]bool) {
	for id := range int32(h.n) {
		for lc := 0; lc <= int(h.levels[id]); lc++ {
			l := h.links(id, lc)
			kept := slices.DeleteFunc(slices.Clone(l[1:1+l[0]]), func(e int32) bool { return cut[e] })
			copy(l[1:], kept)
			l[0] = int32(len(kept))
		}
	}
}

// TestHNSW_SearchFallback pins the exact finish of a walk that finds fewer
// than k passing items: the items that pass are unreachable from the
// entry point, but the sample says all pass, so the walk is tried first.
func TestHNSW_SearchFallback(t *testing.T) {
	h, ex, qs := strategyGraph(t)
	dim := h.Dim()
	cut := map[int32]bool{}
	var ids []int32
	for id := int32(7); len(ids) < 12; id += 97 {
		if id != h.entry {
			cut[id] = true
			ids = append(ids, id)
		}
	}
	strand(h, cut)
	h.sample = ids // a sample that flatters the filter: all of it passes
	h.SetEfSearch(16)
	pass := func(id int32) bool { return cut[id] }
	tests := []struct {
		name      string
		k         int
		wantHits  int
		wantShort int64
	}{
		{name: "k pass", k: 10, wantHits: 10},
		{name: "fewer than k pass", k: 20, wantHits: 12, wantShort: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := qs[:dim]
			var hits []Hit
			var st Stats
			got := counted(h, func() { hits, st = h.SearchStats(q, tt.k, pass) })
			if st.Strategy != StrategyGraphThenExact {
				t.Fatalf("strategy %v (selectivity %.2f), want %v", st.Strategy, st.Selectivity, StrategyGraphThenExact)
			}
			if want := (Counters{GraphThenExact: 1, Short: tt.wantShort}); got != want {
				t.Fatalf("counters moved by %+v, want %+v", got, want)
			}
			if len(hits) != tt.wantHits || st.Shortfall != tt.k-tt.wantHits {
				t.Fatalf("%d hits, shortfall %d; want %d hits", len(hits), st.Shortfall, tt.wantHits)
			}
			if want := ex.Search(q, tt.k, pass); !slices.Equal(hits, want) {
				t.Fatalf("hits %v, want the exact answer %v", hits, want)
			}
			// The walk scored what it reached, then the scan the 12 that pass.
			if st.Visited <= len(ids) {
				t.Fatalf("visited %d: the walk did not run before the scan", st.Visited)
			}
		})
	}
}
