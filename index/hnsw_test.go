package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// testData is a clustered set shared by the graph tests, built once: small
// enough for -race, big enough that a graph walk differs from a scan.
type testData struct {
	dim     int
	vecs    []float32
	queries []float32
	ex      *Exact
	h       *HNSW
}

var (
	sharedOnce sync.Once
	shared     testData
	sharedErr  error
)

func graphData(t testing.TB) testData {
	t.Helper()
	sharedOnce.Do(func() {
		const n, dim = 4000, 32
		d := testData{dim: dim}
		d.vecs, sharedErr = GenVectors(DistClustered, n, dim, 11, 0)
		if sharedErr != nil {
			return
		}
		d.queries, _ = GenVectors(DistClustered, 100, dim, 11, 1)
		d.ex, sharedErr = NewExact(dim, d.vecs)
		if sharedErr != nil {
			return
		}
		cfg := DefaultConfig()
		cfg.EfSearch = 64
		d.h, sharedErr = NewHNSW(context.Background(), cfg, dim, d.vecs)
		shared = d
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// overlap counts the ids of got also in want.
func overlap(got, want []Hit) int {
	n := 0
	for _, g := range got {
		for _, w := range want {
			if g.ID == w.ID {
				n++
				break
			}
		}
	}
	return n
}

// checkHits fails unless hits are distinct, pass filter and are ordered by
// score descending then id.
func checkHits(t *testing.T, hits []Hit, filter Filter) {
	t.Helper()
	seen := map[int32]bool{}
	for i, h := range hits {
		if seen[h.ID] {
			t.Fatalf("id %d returned twice", h.ID)
		}
		seen[h.ID] = true
		if filter != nil && !filter(h.ID) {
			t.Fatalf("id %d fails the filter", h.ID)
		}
		if i > 0 && compareHits(hits[i-1], h) >= 0 {
			t.Fatalf("rank %d out of order: %v then %v", i, hits[i-1], h)
		}
	}
}

func TestHNSW_Search(t *testing.T) {
	d := graphData(t)
	for _, k := range []int{1, 10, 50} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			found, total := 0, 0
			for qi := range 100 {
				q := d.queries[qi*d.dim : (qi+1)*d.dim]
				got, st := d.h.SearchStats(q, k, nil)
				checkHits(t, got, nil)
				if len(got) != k || st.Strategy != StrategyGraph || st.Shortfall != 0 {
					t.Fatalf("query %d: %d hits, stats %+v", qi, len(got), st)
				}
				want := d.ex.Search(q, k, nil)
				found += overlap(got, want)
				total += k
			}
			if r := float64(found) / float64(total); r < 0.95 {
				t.Errorf("recall@%d = %.3f, want >= 0.95", k, r)
			}
		})
	}
	t.Run("k beyond Len is an exact scan", func(t *testing.T) {
		q := d.queries[:d.dim]
		got, st := d.h.SearchStats(q, d.h.Len()+3, nil)
		if len(got) != d.h.Len() || st.Strategy != StrategyExact {
			t.Fatalf("%d hits, strategy %v", len(got), st.Strategy)
		}
		checkHits(t, got, nil)
	})
	t.Run("k zero", func(t *testing.T) {
		if got := d.h.Search(d.queries[:d.dim], 0, nil); got != nil {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("wrong dim panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		d.h.Search(make([]float32, d.dim+1), 1, nil)
	})
}

// passEvery returns a filter passing about one item in every, scattered
// by a hash so it is uncorrelated with the clusters.
func passEvery(every uint32) Filter {
	return func(id int32) bool {
		x := uint32(id)*2654435761 + 12345
		x ^= x >> 15
		return x%every == 0
	}
}

func TestHNSW_SearchFiltered(t *testing.T) {
	d := graphData(t)
	const k = 10
	tests := []struct {
		name   string
		filter Filter
		want   []Strategy // strategies allowed
	}{
		{"90%", func(id int32) bool { return id%10 != 0 }, []Strategy{StrategyFilteredGraph}},
		{"50%", passEvery(2), []Strategy{StrategyFilteredGraph, StrategyExact}},
		{"5%", passEvery(20), []Strategy{StrategyFilteredGraph, StrategyExact, StrategyGraphThenExact}},
		{"0.5%", passEvery(200), []Strategy{StrategyExact}},
		{"none", func(int32) bool { return false }, []Strategy{StrategyExact}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, total := 0, 0
			for qi := range 100 {
				q := d.queries[qi*d.dim : (qi+1)*d.dim]
				got, st := d.h.SearchStats(q, k, tt.filter)
				checkHits(t, got, tt.filter)
				want := d.ex.Search(q, k, tt.filter)
				if len(got) != len(want) {
					t.Fatalf("query %d: %d hits, %d pass (stats %+v)", qi, len(got), len(want), st)
				}
				if st.Shortfall != k-len(want) {
					t.Fatalf("query %d: shortfall %d, want %d", qi, st.Shortfall, k-len(want))
				}
				if !slices.Contains(tt.want, st.Strategy) {
					t.Fatalf("query %d: strategy %v (selectivity %.3f), want one of %v", qi, st.Strategy, st.Selectivity, tt.want)
				}
				found += overlap(got, want)
				total += len(want)
			}
			if total > 0 && float64(found)/float64(total) < 0.95 {
				t.Errorf("filtered recall = %.3f, want >= 0.95", float64(found)/float64(total))
			}
		})
	}
}

func TestHNSW_Counters(t *testing.T) {
	d := graphData(t)
	q := d.queries[:d.dim]
	before := d.h.Counters()
	d.h.Search(q, 5, nil)
	d.h.Search(q, 5, func(id int32) bool { return id%10 != 0 })
	d.h.Search(q, 5, func(int32) bool { return false })
	after := d.h.Counters()
	got := Counters{
		Graph:          after.Graph - before.Graph,
		FilteredGraph:  after.FilteredGraph - before.FilteredGraph,
		Exact:          after.Exact - before.Exact,
		GraphThenExact: after.GraphThenExact - before.GraphThenExact,
		Short:          after.Short - before.Short,
	}
	want := Counters{Graph: 1, FilteredGraph: 1, Exact: 1, Short: 1}
	if got != want {
		t.Errorf("counters moved by %+v, want %+v", got, want)
	}
}

func TestHNSW_ConcurrentSearch(t *testing.T) {
	d := graphData(t)
	want := make([][]Hit, 20)
	for i := range want {
		want[i] = d.h.Search(d.queries[i*d.dim:(i+1)*d.dim], 10, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 50 {
				i := (w + r) % len(want)
				f := Filter(nil)
				if r%3 == 0 {
					f = passEvery(3)
				}
				got := d.h.Search(d.queries[i*d.dim:(i+1)*d.dim], 10, f)
				if f == nil && !slices.Equal(got, want[i]) {
					errs <- fmt.Errorf("query %d answered differently under concurrency", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewHNSW(t *testing.T) {
	good := randomUnit(1, 50, 4)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		cfg     Config
		vecs    []float32
		wantErr error
	}{
		{name: "not unit", ctx: context.Background(), cfg: DefaultConfig(), vecs: []float32{3, 0, 0, 0}, wantErr: ErrInvalid},
		{name: "empty", ctx: context.Background(), cfg: DefaultConfig(), vecs: nil, wantErr: ErrInvalid},
		{name: "bad m", ctx: context.Background(), cfg: Config{Backend: BackendHNSW, M: 1, EfConstruction: 10, EfSearch: 10}, vecs: good},
		{name: "cancelled", ctx: cancelled, cfg: DefaultConfig(), vecs: randomUnit(2, 5000, 4), wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHNSW(tt.ctx, tt.cfg, 4, tt.vecs)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("NewHNSW = %v, %v; want error %v", h, err, tt.wantErr)
			}
		})
	}
	t.Run("single vector", func(t *testing.T) {
		h, err := NewHNSW(context.Background(), DefaultConfig(), 4, good[:4])
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Search(good[:4], 3, nil); len(got) != 1 || got[0].ID != 0 {
			t.Fatalf("got %v", got)
		}
	})
}

func BenchmarkHNSW_Search(b *testing.B) {
	d := graphData(b)
	for _, f := range []struct {
		name   string
		filter Filter
	}{{"nofilter", nil}, {"pass50pct", passEvery(2)}, {"pass5pct", passEvery(20)}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := d.queries[(i%100)*d.dim : (i%100+1)*d.dim]
				d.h.Search(q, 10, f.filter)
				i++
			}
		})
	}
}
