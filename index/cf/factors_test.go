package cf

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/recsys-dev/recsys/index"
)

func nan() float64 { return math.NaN() }

// randomFactors draws items x dim factors with norms spread over an order
// of magnitude, so the MIPS augmentation has work to do.
func randomFactors(t testing.TB, rng *rand.Rand, items, dim int, lambda, alpha float32) *Factors {
	t.Helper()
	y := make([]float32, items*dim)
	for i := range items {
		scale := 0.1 + 3*rng.Float64()
		for d := range dim {
			y[i*dim+d] = float32(rng.NormFloat64() * scale)
		}
	}
	f, err := NewFactors(items, dim, y, lambda, alpha)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// denseUserStep is the full ALS user step by definition, over every item:
// A = sum_i c_i y_i y_i^T + lambda I, b = sum_i c_i p_i y_i, with c_i = 1 and
// p_i = 0 for unobserved items, solved by Gaussian elimination with partial
// pivoting (not the Cholesky under test).
func denseUserStep(f *Factors, conf map[int32]float64) []float64 {
	dim := f.Dim()
	a := make([][]float64, dim)
	for r := range a {
		a[r] = make([]float64, dim+1)
		a[r][r] = float64(f.Lambda())
	}
	for i := range int32(f.Len()) {
		c, p := 1.0, 0.0
		if w, ok := conf[i]; ok {
			c, p = 1+float64(f.Alpha())*w, 1
		}
		y := f.Item(i)
		for r := range dim {
			for s := range dim {
				a[r][s] += c * float64(y[r]) * float64(y[s])
			}
			a[r][dim] += c * p * float64(y[r])
		}
	}
	for col := range dim {
		piv := col
		for r := col + 1; r < dim; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		a[col], a[piv] = a[piv], a[col]
		for r := range dim {
			if r != col {
				m := a[r][col] / a[col][col]
				for s := col; s <= dim; s++ {
					a[r][s] -= m * a[col][s]
				}
			}
		}
	}
	x := make([]float64, dim)
	for r := range dim {
		x[r] = a[r][dim] / a[r][r]
	}
	return x
}

func TestFactors_FoldInMatchesDenseSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		name          string
		items, dim    int
		lambda, alpha float32
	}{
		{"small", 40, 4, 0.1, 2},
		{"typical", 300, 32, 1, 10},
		{"strong regularisation", 100, 16, 50, 40},
		{"alpha 0", 100, 8, 0.5, 0},
		{"odd dim", 120, 7, 1, 3},
		{"long history", 400, 9, 1, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := randomFactors(t, rng, c.items, c.dim, c.lambda, c.alpha)
			for range 10 {
				perm := rng.Perm(c.items)[:1+rng.IntN(c.items/2)]
				hist := make([]int32, len(perm))
				weights := make([]float32, len(perm))
				conf := map[int32]float64{}
				for p, i := range perm {
					hist[p], weights[p] = int32(i), float32(0.1+rng.Float64()*3)
					conf[int32(i)] = float64(weights[p])
				}
				// What FoldIn skips: out of range and non-positive weights.
				hist = append(hist, -1, int32(c.items), int32(perm[0]))
				weights = append(weights, 1, 1, 0)
				x := make([]float32, c.dim)
				if !f.FoldIn(hist, weights, x) {
					t.Fatal("FoldIn failed on a non-empty history")
				}
				want := denseUserStep(f, conf)
				var diff, norm float64
				for d := range x {
					diff += (float64(x[d]) - want[d]) * (float64(x[d]) - want[d])
					norm += want[d] * want[d]
				}
				if math.Sqrt(diff) > 1e-4*math.Sqrt(norm)+1e-6 {
					t.Fatalf("FoldIn = %v\nwant %v (|diff| %g, |want| %g)", x, want, math.Sqrt(diff), math.Sqrt(norm))
				}
			}
		})
	}
}

func TestFactors_FoldInEmpty(t *testing.T) {
	f := randomFactors(t, rand.New(rand.NewPCG(1, 1)), 10, 4, 1, 1)
	for _, c := range []struct {
		name    string
		history []int32
		weights []float32
	}{
		{"nil", nil, nil},
		{"out of range", []int32{-1, 10}, nil},
		{"zero and negative weights", []int32{1, 2}, []float32{0, -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := []float32{9, 9, 9, 9}
			if f.FoldIn(c.history, c.weights, x) {
				t.Fatal("FoldIn reported a vector for an empty history")
			}
			if slices.ContainsFunc(x, func(v float32) bool { return v != 0 }) {
				t.Fatalf("x = %v, want zeros", x)
			}
		})
	}
}

func TestFactors_FoldInConcurrent(t *testing.T) {
	f := randomFactors(t, rand.New(rand.NewPCG(2, 2)), 200, 16, 1, 5)
	hist := []int32{3, 1, 4, 15, 92, 65}
	want := make([]float32, 16)
	f.FoldIn(hist, nil, want)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			x := make([]float32, 16)
			for range 200 {
				f.FoldIn(hist, nil, x)
				if !slices.Equal(x, want) {
					t.Error("concurrent FoldIn differs")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestFactors_FoldInAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	f := randomFactors(t, rand.New(rand.NewPCG(3, 3)), 500, 64, 1, 5)
	hist := []int32{1, 2, 3, 50, 400}
	x := make([]float32, 64)
	f.FoldIn(hist, nil, x)
	if a := testing.AllocsPerRun(100, func() { f.FoldIn(hist, nil, x) }); a != 0 {
		t.Fatalf("warm FoldIn allocates %v times per call", a)
	}
}

// TestFactors_MIPS checks the augmentation: exact top-k by cosine over
// MIPSVectors (through index.Exact, as serving would) equals exact top-k
// by inner product over the factors.
func TestFactors_MIPS(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const items, dim, k = 2000, 24, 20
	f := randomFactors(t, rng, items, dim, 1, 1)
	vecs := f.MIPSVectors()
	ex, err := index.NewExact(dim+1, vecs) // refuses vectors that are not unit
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, dim+1)
	for c := range 50 {
		x := make([]float32, dim)
		for d := range x {
			x[d] = float32(rng.NormFloat64())
		}
		f.MIPSQuery(x, q)
		got := ex.Search(q, k, nil)
		ip := make([]index.Hit, items)
		for i := range ip {
			var s float64
			for d, v := range f.Item(int32(i)) {
				s += float64(v) * float64(x[d])
			}
			ip[i] = index.Hit{ID: int32(i), Score: float32(s)}
		}
		slices.SortFunc(ip, func(a, b index.Hit) int {
			if worse(b, a) {
				return -1
			}
			return 1
		})
		for r := range k {
			if got[r].ID != ip[r].ID {
				t.Fatalf("query %d rank %d: cosine gives item %d, inner product item %d", c, r, got[r].ID, ip[r].ID)
			}
			if s := f.Score(x, got[r].ID); math.Abs(float64(s-ip[r].Score)) > 1e-3*math.Abs(float64(s))+1e-4 {
				t.Fatalf("Score(%d) = %v, inner product %v", got[r].ID, s, ip[r].Score)
			}
		}
	}
	f.MIPSQuery(make([]float32, dim), q)
	if slices.ContainsFunc(q, func(v float32) bool { return v != 0 }) {
		t.Fatalf("MIPSQuery(0) = %v, want zeros", q)
	}
}

func TestNewFactors_Invalid(t *testing.T) {
	cases := []struct {
		name          string
		items, dim    int
		y             []float32
		lambda, alpha float32
	}{
		{"dim 0", 1, 0, nil, 1, 1},
		{"dim too large", 1, MaxDim + 1, make([]float32, MaxDim+1), 1, 1},
		{"length", 2, 2, make([]float32, 3), 1, 1},
		{"lambda 0", 1, 2, make([]float32, 2), 0, 1},
		{"negative alpha", 1, 2, make([]float32, 2), 1, -1},
		{"NaN factor", 1, 2, []float32{0, float32(nan())}, 1, 1},
		{"negative items", -1, 2, nil, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewFactors(c.items, c.dim, c.y, c.lambda, c.alpha)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

// TestGram_Workers checks the parallel YtY against a serial sum.
func TestGram_Workers(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const items, dim = 3000, 40 // above the parallel threshold
	y := make([]float32, items*dim)
	for i := range y {
		y[i] = float32(rng.NormFloat64())
	}
	g := gram(items, dim, y)
	for r := range dim {
		for c := 0; c <= r; c++ {
			var s float64
			for i := range items {
				s += float64(y[i*dim+r]) * float64(y[i*dim+c])
			}
			if g[r*dim+c] != s {
				t.Fatalf("YtY[%d][%d] = %v, want %v", r, c, g[r*dim+c], s)
			}
		}
	}
}

func BenchmarkFactors_FoldIn(b *testing.B) {
	for _, n := range []int{50, 200} {
		b.Run(map[int]string{50: "dim64_hist50", 200: "dim64_hist200"}[n], func(b *testing.B) {
			rng := rand.New(rand.NewPCG(11, 12))
			f := randomFactors(b, rng, 10000, 64, 1, 10)
			hist := make([]int32, n)
			for i := range hist {
				hist[i] = int32(rng.IntN(f.Len()))
			}
			x := make([]float32, 64)
			b.ReportAllocs()
			for b.Loop() {
				f.FoldIn(hist, nil, x)
			}
		})
	}
}

// TestFactors_ScoreAll: every item's score equals Score's, bit for bit.
func TestFactors_ScoreAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dim := range []int{1, 7, 32, 33} {
		f := randomFactors(t, rng, 700, dim, 1, 1)
		x := make([]float32, dim)
		for d := range x {
			x[d] = float32(rng.NormFloat64())
		}
		out := make([]float32, f.Len())
		f.ScoreAll(x, out)
		for i, s := range out {
			if want := f.Score(x, int32(i)); s != want {
				t.Fatalf("dim %d item %d: ScoreAll %v, Score %v", dim, i, s, want)
			}
		}
	}
}
