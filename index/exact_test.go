package index

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// randomUnit returns n random unit vectors of dimension dim.
func randomUnit(seed uint64, n, dim int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	Normalize(v, dim)
	return v
}

// gridUnit returns vectors whose components are ±0.25 in 16 dimensions:
// exactly unit length, and every dot product is a multiple of 1/16 computed
// exactly in float32 whatever the summation order. That makes exact
// comparison with a naive sort possible and produces many ties.
func gridUnit(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	v := make([]float32, n*16)
	for i := range v {
		v[i] = 0.25
		if r.IntN(2) == 0 {
			v[i] = -0.25
		}
	}
	return v
}

func mustExact(t testing.TB, dim int, v []float32) *Exact {
	t.Helper()
	e, err := NewExact(dim, v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// naive scores every item, keeps those passing filter and sorts.
func naive(e *Exact, q []float32, k int, filter Filter) []Hit {
	var all []Hit
	for i := range e.Len() {
		if filter != nil && !filter(int32(i)) {
			continue
		}
		var s float32
		for j, x := range e.Vector(int32(i)) {
			s += x * q[j]
		}
		all = append(all, Hit{ID: int32(i), Score: s})
	}
	slices.SortFunc(all, compareHits)
	return all[:min(k, len(all))]
}

func TestExact_Search(t *testing.T) {
	const n = 3000
	e := mustExact(t, 16, gridUnit(1, n))
	queries := gridUnit(2, 20)
	filters := map[string]Filter{
		"no filter":    nil,
		"every tenth":  func(id int32) bool { return id%10 == 0 },
		"none pass":    func(int32) bool { return false },
		"first 7 only": func(id int32) bool { return id < 7 },
	}
	for fname, f := range filters {
		for _, k := range []int{1, 10, 100, n, n + 5} {
			t.Run(fmt.Sprintf("%s/k=%d", fname, k), func(t *testing.T) {
				for qi := range 20 {
					q := queries[qi*16 : (qi+1)*16]
					got := e.Search(q, k, f)
					want := naive(e, q, k, f)
					if !slices.Equal(got, want) {
						t.Fatalf("query %d: got %d hits %v..., want %d hits %v...", qi, len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
					}
				}
			})
		}
	}
}

// On continuous random data the summation order of the SIMD dot product
// may change the last bits, so scores are compared with a tolerance and the
// returned set must be a valid top k.
func TestExact_SearchRandom(t *testing.T) {
	const n, dim, k = 5000, 64, 25
	e := mustExact(t, dim, randomUnit(3, n, dim))
	q := randomUnit(4, 1, dim)
	got := e.Search(q, k, nil)
	want := naive(e, q, k+1, nil)
	if len(got) != k {
		t.Fatalf("got %d hits, want %d", len(got), k)
	}
	for i, h := range got {
		if math.Abs(float64(h.Score-want[i].Score)) > 1e-5 {
			t.Errorf("rank %d: score %v, naive %v", i, h.Score, want[i].Score)
		}
		if i > 0 && compareHits(got[i-1], h) >= 0 {
			t.Errorf("rank %d out of order: %v then %v", i, got[i-1], h)
		}
	}
	if last := got[k-1].Score; last < want[k].Score-1e-5 {
		t.Errorf("k-th score %v is below the naive (k+1)-th %v: a better item was missed", last, want[k].Score)
	}
}

func TestExact_SearchFilterIsLazy(t *testing.T) {
	// Scores fall with id, so once the first k items are in, nothing else
	// can enter and the filter must not be asked about them.
	const n, dim = 1000, 2
	v := make([]float32, 0, n*dim)
	for i := range n {
		a := float64(i) / n * math.Pi / 2
		v = append(v, float32(math.Cos(a)), float32(math.Sin(a)))
	}
	e := mustExact(t, dim, v)
	q := []float32{1, 0}
	tests := []struct {
		name      string
		pass      func(int32) bool
		k         int
		wantCalls int64
		wantHits  int
	}{
		{name: "all pass", pass: func(int32) bool { return true }, k: 5, wantCalls: 5, wantHits: 5},
		{name: "odd pass", pass: func(id int32) bool { return id%2 == 1 }, k: 5, wantCalls: 10, wantHits: 5},
		{name: "none pass", pass: func(int32) bool { return false }, k: 5, wantCalls: n, wantHits: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			hits := e.Search(q, tt.k, func(id int32) bool { calls.Add(1); return tt.pass(id) })
			if calls.Load() != tt.wantCalls {
				t.Errorf("filter called %d times, want %d", calls.Load(), tt.wantCalls)
			}
			if len(hits) != tt.wantHits {
				t.Errorf("got %d hits, want %d", len(hits), tt.wantHits)
			}
		})
	}
}

func TestExact_SearchEdgeCases(t *testing.T) {
	e := mustExact(t, 16, gridUnit(5, 50))
	q := gridUnit(6, 1)
	t.Run("k zero", func(t *testing.T) {
		if h := e.Search(q, 0, nil); h != nil {
			t.Errorf("got %v", h)
		}
	})
	t.Run("NaN query still returns k hits", func(t *testing.T) {
		bad := slices.Clone(q)
		bad[3] = float32(math.NaN())
		if h := e.Search(bad, 7, nil); len(h) != 7 {
			t.Errorf("got %d hits", len(h))
		}
	})
	t.Run("wrong dimension panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		e.Search(q[:8], 3, nil)
	})
}

func TestExact_SearchConcurrent(t *testing.T) {
	e := mustExact(t, 32, randomUnit(7, 2000, 32))
	qs := randomUnit(8, 16, 32)
	want := make([][]Hit, 16)
	for i := range want {
		want[i] = e.Search(qs[i*32:(i+1)*32], 10, nil)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 16 {
				j := (i + g) % 16
				if got := e.Search(qs[j*32:(j+1)*32], 10, nil); !slices.Equal(got, want[j]) {
					t.Errorf("concurrent search %d differs", j)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewExact(t *testing.T) {
	unit := gridUnit(9, 3)
	tests := []struct {
		name    string
		dim     int
		vecs    []float32
		wantErr string
	}{
		{name: "valid", dim: 16, vecs: unit},
		{name: "zero vector allowed", dim: 2, vecs: []float32{0, 0, 1, 0}},
		{name: "zero dim", dim: 0, vecs: unit, wantErr: "dim 0 outside"},
		{name: "huge dim", dim: MaxDim + 1, vecs: unit, wantErr: "outside 1..65536"},
		{name: "empty", dim: 16, vecs: nil, wantErr: "no vectors"},
		{name: "ragged", dim: 16, vecs: unit[:20], wantErr: "20 values is not a multiple of dim 16"},
		{name: "NaN", dim: 2, vecs: []float32{1, 0, float32(math.NaN()), 0}, wantErr: "vector 1 has a non-finite value"},
		{name: "not normalised", dim: 2, vecs: []float32{3, 4}, wantErr: "vector 0 has norm 5"},
		// The SIMD check squares in float32: these underflow to a zero sum
		// there, and the float64 check must still catch them.
		{name: "tiny values", dim: 2, vecs: []float32{1, 0, 1e-30, 1e-30}, wantErr: "vector 1 has norm 1.414e-30"},
		{name: "infinite", dim: 2, vecs: []float32{float32(math.Inf(-1)), 0}, wantErr: "vector 0 has a non-finite value"},
		{name: "just past the tolerance", dim: 1, vecs: []float32{1, 1.0011}, wantErr: "vector 1 has norm 1.001"},
		{name: "just within the tolerance", dim: 1, vecs: []float32{1, 0.9991}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewExact(tt.dim, tt.vecs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if e.Len() != len(tt.vecs)/tt.dim || e.Dim() != tt.dim {
					t.Errorf("Len %d Dim %d", e.Len(), e.Dim())
				}
				if !slices.Equal(e.Vector(int32(e.Len()-1)), tt.vecs[len(tt.vecs)-tt.dim:]) {
					t.Error("Vector returns the wrong row")
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "exact", cfg: Config{Backend: "exact"}},
		{name: "empty", cfg: Config{}, wantErr: "backend: must be set"},
		{name: "unknown", cfg: Config{Backend: "faiss"}, wantErr: `backend: unknown backend "faiss"`},
		{name: "default", cfg: DefaultConfig()},
		{name: "quantize none", cfg: withQuant(DefaultConfig(), QuantizeNone, 0)},
		{name: "quantize int8", cfg: withQuant(DefaultConfig(), QuantizeInt8, 4)},
		{name: "unknown quantize", cfg: withQuant(DefaultConfig(), "pq", 0), wantErr: `quantize: unknown scheme "pq"`},
		{name: "int8 on exact", cfg: withQuant(Config{Backend: BackendExact}, QuantizeInt8, 0), wantErr: `quantize: int8 needs backend "hnsw", not "exact"`},
		{name: "int8 on coder-hnsw", cfg: withQuant(Config{Backend: BackendCoderHNSW, M: 16, EfConstruction: 100, EfSearch: 64}, QuantizeInt8, 0), wantErr: "quantize: int8 needs backend"},
		{name: "negative rescore", cfg: withQuant(DefaultConfig(), QuantizeInt8, -1), wantErr: "rescore: must be in 0..64"},
		{name: "rescore too large", cfg: withQuant(DefaultConfig(), QuantizeInt8, 65), wantErr: "rescore: must be in 0..64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func withQuant(c Config, q string, rescore int) Config {
	c.Quantize, c.Rescore = q, rescore
	return c
}

func BenchmarkExact_Search(b *testing.B) {
	const dim = 128
	for _, n := range []int{10_000, 100_000} {
		e := mustExact(b, dim, randomUnit(10, n, dim))
		q := randomUnit(11, 1, dim)
		for _, tc := range []struct {
			name   string
			filter Filter
		}{
			{"nofilter", nil},
			{"filter10pct", func(id int32) bool { return id%10 == 0 }},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if h := e.Search(q, 10, tc.filter); len(h) != 10 {
						b.Fatalf("%d hits", len(h))
					}
				}
			})
		}
	}
}

// TestTopK_MatchesSearch: TopK over the rows' dot products answers what
// Exact.Search does, with and without a filter, with ties and a NaN score.
func TestTopK_MatchesSearch(t *testing.T) {
	const n, dim = 3000, 16
	vecs := randomUnit(7, n, dim)
	copy(vecs[5*dim:6*dim], vecs[9*dim:10*dim]) // a tie: items 5 and 9
	e := mustExact(t, dim, vecs)
	q := randomUnit(8, 1, dim)
	scores := make([]float32, n)
	DotRows(q, vecs, scores)
	odd := func(i int32) bool { return i%2 == 1 }
	for _, k := range []int{0, 1, 10, 100, n + 5} {
		for _, f := range []Filter{nil, odd} {
			if got, want := TopK(scores, k, f), e.Search(q, k, f); !slices.Equal(got, want) {
				t.Fatalf("k %d, filter %v: TopK %v, Search %v", k, f != nil, got, want)
			}
		}
	}
	scores[0] = float32(math.NaN())
	if got := TopK(scores, n, nil); got[len(got)-1].ID != 0 {
		t.Fatalf("a NaN score ranks %v, want last", got[len(got)-1])
	}
}
