package cf

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recsys-dev/recsys/index"
)

// randomNeighbours builds a valid table: per item up to top random other
// items with random similarities, sorted best first. Similarities are
// quantised to a few values so ties (by item number) are exercised.
func randomNeighbours(t testing.TB, rng *rand.Rand, items, top int) *Neighbours {
	t.Helper()
	offsets := make([]int32, 1, items+1)
	var ids []int32
	var sims []float32
	for i := range items {
		want := rng.IntN(top + 1)
		var es []index.Hit
		for _, j := range rng.Perm(items) {
			if len(es) == want {
				break
			}
			if j != i {
				es = append(es, index.Hit{ID: int32(j), Score: float32(rng.IntN(8)) / 8})
			}
		}
		slices.SortFunc(es, func(a, b index.Hit) int {
			switch {
			case worse(b, a):
				return -1
			case worse(a, b):
				return 1
			}
			return 0
		})
		for _, e := range es {
			ids, sims = append(ids, e.ID), append(sims, e.Score)
		}
		offsets = append(offsets, int32(len(ids)))
	}
	n, err := NewNeighbours(items, offsets, ids, sims)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// bruteRecommend is the definition: score every item by the weighted sum
// over history of its listed similarity, drop history, unreachable and
// filtered items, sort best first with ties by item number.
func bruteRecommend(n *Neighbours, history []int32, weights []float32, k int, keep index.Filter) []index.Hit {
	inHist := map[int32]bool{}
	for _, h := range history {
		inHist[h] = true
	}
	var all []index.Hit
	for j := range int32(n.Len()) {
		reached := false
		var s float32
		for p, h := range history {
			ids, sims := n.Of(h)
			if q := slices.Index(ids, j); q >= 0 {
				reached = true
				s += weightAt(weights, p) * sims[q]
			}
		}
		if reached && !inHist[j] && (keep == nil || keep(j)) {
			all = append(all, index.Hit{ID: j, Score: s})
		}
	}
	slices.SortFunc(all, func(a, b index.Hit) int {
		if worse(b, a) {
			return -1
		}
		return 1
	})
	return all[:min(k, len(all))]
}

func TestNeighbours_Recommend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := randomNeighbours(t, rng, 300, 20)
	var sc Scratch // shared across cases: reuse must not leak state
	for c := range 200 {
		hist := make([]int32, 1+rng.IntN(15))
		for i := range hist {
			hist[i] = int32(rng.IntN(n.Len()))
		}
		var weights []float32
		if c%2 == 0 {
			weights = make([]float32, len(hist))
			for i := range weights {
				// Dyadic weights keep float sums exact in any order, so
				// the comparison is exact.
				weights[i] = float32(rng.IntN(4)) / 4
			}
		}
		var keep index.Filter
		if c%3 == 0 {
			keep = func(id int32) bool { return id%3 != 0 }
		}
		k := 1 + rng.IntN(30)
		got := n.Recommend(hist, weights, k, keep, &sc)
		want := bruteRecommend(n, hist, weights, k, keep)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: Recommend(%v, %v, %d)\n got %v\nwant %v", c, hist, weights, k, got, want)
		}
		for j := range int32(n.Len()) {
			want := n.Score(hist, weights, j)
			if slices.Contains(hist, j) {
				want = 0
			}
			if v := sc.Value(j); v != want {
				t.Fatalf("case %d: Value(%d) = %v, want %v", c, j, v, want)
			}
		}
		for _, h := range got {
			if keep != nil && !keep(h.ID) {
				t.Fatalf("case %d: filtered item %d returned", c, h.ID)
			}
			if slices.Contains(hist, h.ID) {
				t.Fatalf("case %d: history item %d returned", c, h.ID)
			}
			if s := n.Score(hist, weights, h.ID); s != h.Score {
				t.Fatalf("case %d: Score(%d) = %v, Recommend said %v", c, h.ID, s, h.Score)
			}
		}
	}
}

func TestNeighbours_RecommendEdges(t *testing.T) {
	n, err := NewNeighbours(3, []int32{0, 2, 3, 3}, []int32{1, 2, 0}, []float32{0.5, 0.5, 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		history []int32
		k       int
		want    []index.Hit
	}{
		{"tie by item number", []int32{0}, 5, []index.Hit{{ID: 1, Score: 0.5}, {ID: 2, Score: 0.5}}},
		{"k cuts", []int32{0}, 1, []index.Hit{{ID: 1, Score: 0.5}}},
		{"history excluded", []int32{0, 1}, 5, []index.Hit{{ID: 2, Score: 0.5}}},
		{"out of range skipped", []int32{-1, 7, 1}, 5, []index.Hit{{ID: 0, Score: 1}}},
		{"no neighbours", []int32{2}, 5, []index.Hit{}},
		{"empty history", nil, 5, nil},
		{"k 0", []int32{0}, 0, nil},
	}
	var sc Scratch
	if got := n.Recommend([]int32{0}, nil, 0, nil, &sc); got != nil || sc.Value(1) != 0.5 || sc.Value(0) != 0 {
		t.Fatalf("k 0: got %v, Value(1) %v, Value(0) %v; want nil, 0.5, 0", got, sc.Value(1), sc.Value(0))
	}
	if n.Recommend(nil, nil, 5, nil, &sc); sc.Value(1) != 0 {
		t.Fatalf("Value(1) after an empty history is %v, want 0", sc.Value(1))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := n.Recommend(c.history, nil, c.k, nil, nil)
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestNeighbours_RecommendAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := randomNeighbours(t, rng, 2000, 50)
	hist := []int32{1, 5, 9, 200, 1999}
	var sc Scratch
	n.Recommend(hist, nil, 20, nil, &sc)
	if a := testing.AllocsPerRun(50, func() { n.Recommend(hist, nil, 20, nil, &sc) }); a > 1 {
		t.Fatalf("Recommend allocates %v times per call with warm scratch, want 1 (the result)", a)
	}
}

func TestNewNeighbours_Invalid(t *testing.T) {
	cases := []struct {
		name    string
		items   int
		offsets []int32
		ids     []int32
		sims    []float32
	}{
		{"offsets length", 2, []int32{0, 1}, []int32{1}, []float32{1}},
		{"ids and sims differ", 2, []int32{0, 1, 1}, []int32{1}, nil},
		{"offsets do not start at 0", 2, []int32{1, 1, 1}, []int32{1}, []float32{1}},
		{"offsets end wrong", 2, []int32{0, 1, 2}, []int32{1}, []float32{1}},
		{"offsets decrease", 2, []int32{0, 2, 1}, []int32{1}, []float32{1}},
		{"neighbour out of range", 2, []int32{0, 1, 1}, []int32{2}, []float32{1}},
		{"self", 2, []int32{0, 1, 1}, []int32{0}, []float32{1}},
		{"repeated", 3, []int32{0, 2, 2, 2}, []int32{1, 1}, []float32{1, 1}},
		{"not best first", 3, []int32{0, 2, 2, 2}, []int32{1, 2}, []float32{0.5, 1}},
		{"tie out of order", 3, []int32{0, 2, 2, 2}, []int32{2, 1}, []float32{1, 1}},
		{"not finite", 2, []int32{0, 1, 1}, []int32{1}, []float32{float32(nan())}},
		{"negative items", -1, []int32{0}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewNeighbours(c.items, c.offsets, c.ids, c.sims)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

func BenchmarkNeighbours_Recommend(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const items, top = 10000, 100
	offsets := make([]int32, 1, items+1)
	ids := make([]int32, 0, items*top)
	sims := make([]float32, 0, items*top)
	for i := range items {
		row := rng.Perm(items)[:top+1]
		row = slices.DeleteFunc(row, func(j int) bool { return j == i })[:top]
		for r, j := range row {
			ids, sims = append(ids, int32(j)), append(sims, 1/float32(r+1))
		}
		// Rows are best first by construction; ties cannot happen.
		offsets = append(offsets, int32(len(ids)))
	}
	n, err := NewNeighbours(items, offsets, ids, sims)
	if err != nil {
		b.Fatal(err)
	}
	hist := make([]int32, 50)
	weights := make([]float32, 50)
	for i := range hist {
		hist[i], weights[i] = int32(rng.IntN(items)), 1/float32(i+1)
	}
	var sc Scratch
	b.ReportAllocs()
	for b.Loop() {
		n.Recommend(hist, weights, 100, nil, &sc)
	}
}
