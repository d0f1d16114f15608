package cf

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/recsys-dev/recsys/index"
	"github.com/viterin/vek/vek32"
)

// MaxDim bounds the number of factors. A fold-in costs dim^3/6 for the
// solve, about 0.2 s at 1024, far past any request budget, so a larger
// value is a corrupt header or a configuration mistake.
const MaxDim = 1024

// Factors are the item factors of an implicit-feedback matrix
// factorisation (Hu, Koren and Volinsky 2008) with what the fold-in needs.
type Factors struct {
	items, dim    int
	y             []float32 // items x dim, row-major
	lambda, alpha float32
	// yty is YtY + lambda*I (dim x dim, float64, lower triangle used),
	// computed once so a fold-in costs its history, not the catalog.
	yty []float64
	// pool holds *[]float64 fold-in scratch of scratchLen(dim): the matrix
	// being factored and three vectors. A pointer so Put does not allocate.
	pool sync.Pool
}

// NewFactors wraps item factors y (items x dim, row-major) trained with
// regularisation lambda and confidence c = 1 + alpha*weight. It keeps y
// (no copy; the caller must not modify it afterwards) and precomputes
// YtY, which costs items*dim^2/2 multiply-adds spread over GOMAXPROCS
// goroutines.
func NewFactors(items, dim int, y []float32, lambda, alpha float32) (*Factors, error) {
	if err := checkFactors(items, dim, y, lambda, alpha); err != nil {
		return nil, fmt.Errorf("new factors: %w: %w", ErrInvalid, err)
	}
	return newFactors(items, dim, y, lambda, alpha), nil
}

func checkFactors(items, dim int, y []float32, lambda, alpha float32) error {
	switch {
	case items < 0 || items > MaxItems:
		return fmt.Errorf("items %d outside 0..%d", items, MaxItems)
	case dim < 1 || dim > MaxDim:
		return fmt.Errorf("dim %d outside 1..%d", dim, MaxDim)
	case len(y) != items*dim:
		return fmt.Errorf("%d values for %d items x %d factors", len(y), items, dim)
	case !finite(lambda) || lambda <= 0:
		return fmt.Errorf("lambda %v must be finite and > 0", lambda)
	case !finite(alpha) || alpha < 0:
		return fmt.Errorf("alpha %v must be finite and >= 0", alpha)
	}
	for i, v := range y {
		if !finite(v) {
			return fmt.Errorf("item %d factor %d is %v", i/dim, i%dim, v)
		}
	}
	return nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func newFactors(items, dim int, y []float32, lambda, alpha float32) *Factors {
	f := &Factors{items: items, dim: dim, y: y, lambda: lambda, alpha: alpha, yty: gram(items, dim, y)}
	for d := range dim {
		f.yty[d*dim+d] += float64(lambda)
	}
	f.pool.New = func() any {
		s := make([]float64, scratchLen(dim))
		return &s
	}
	return f
}

// gram is the lower triangle of YtY. Workers own disjoint output rows and
// each entry sums over the items in order, so the result is the same bit
// for bit whatever GOMAXPROCS is: training stays deterministic for a seed.
func gram(items, dim int, y []float32) []float64 {
	g := make([]float64, dim*dim)
	workers := min(runtime.GOMAXPROCS(0), dim)
	if items*dim*dim < 1<<22 {
		workers = 1 // too little work to pay for goroutines
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			row := make([]float64, dim)
			// Rows w, w+workers, ...: row r has r+1 entries, so
			// interleaving balances the triangle.
			for i := range items {
				v := y[i*dim : (i+1)*dim]
				for d, x := range v {
					row[d] = float64(x)
				}
				for r := w; r < dim; r += workers {
					yr := row[r]
					if yr == 0 {
						continue
					}
					out := g[r*dim : r*dim+r+1]
					for c := range out {
						out[c] += yr * row[c]
					}
				}
			}
		})
	}
	wg.Wait()
	return g
}

// foldBlock is how many history items FoldIn gathers before adding their
// outer products: the update is then dim^2/2 dot products of length
// foldBlock, which keep their sums in registers, where a rank-one update
// per item reads and writes the matrix for every one (three times slower).
const foldBlock = 32

// scratchLen is the fold-in scratch: the dim x dim system, the right-hand
// side and two transposed blocks of history factors.
func scratchLen(dim int) int { return dim*dim + dim + 2*foldBlock*dim }

// Dim is the number of factors.
func (f *Factors) Dim() int { return f.dim }

// Len is the number of items.
func (f *Factors) Len() int { return f.items }

// Lambda is the regularisation the factors were trained with; FoldIn uses
// it.
func (f *Factors) Lambda() float32 { return f.lambda }

// Alpha is the confidence scale: c = 1 + Alpha*weight.
func (f *Factors) Alpha() float32 { return f.alpha }

// Item returns item's factor vector (a view; do not modify). An item out
// of range has none.
func (f *Factors) Item(item int32) []float32 {
	if item < 0 || int(item) >= f.items {
		return nil
	}
	i := int(item) * f.dim
	return f.y[i : i+f.dim : i+f.dim]
}

// FoldIn computes the user vector the training would give a user with
// this history (item numbers with confidence weights; nil weights are all
// 1, and a missing trailing weight is 1), holding the item factors fixed:
// the least-squares solve of (YtY + Yt(Cu-I)Y + lambda I) x = Yt Cu p(u)
// with c = 1 + Alpha*weight. out has Dim() entries. Items out of range are
// skipped, and so are weights <= 0 (the model has no negative feedback: a
// zero weight is an unobserved item); a repeated item counts once per
// occurrence. An empty history gives the zero vector and false. It costs
// O(len(history)*dim^2 + dim^3) and allocates nothing once warm; safe for
// concurrent use.
func (f *Factors) FoldIn(history []int32, weights []float32, out []float32) bool {
	dim := f.dim
	out = out[:dim]
	bufp := f.pool.Get().(*[]float64)
	buf := *bufp
	a, b := buf[:dim*dim], buf[dim*dim:dim*dim+dim]
	// yt[d*foldBlock+k] is factor d of the block's k-th item, zt the same
	// times c-1: A += sum_k (c_k-1) y_k y_k^T is then zt_r . yt_c.
	yt := buf[dim*dim+dim : dim*dim+dim+foldBlock*dim]
	zt := buf[dim*dim+dim+foldBlock*dim:]
	copy(a, f.yty)
	clear(b)
	used, nb := 0, 0
	flush := func() {
		addGram(a, dim, zt, yt, nb)
		nb = 0
	}
	for p, h := range history {
		w := weightAt(weights, p)
		if h < 0 || int(h) >= f.items || !(w > 0) {
			continue
		}
		used++
		c := 1 + float64(f.alpha)*float64(w)
		for d, x := range f.y[int(h)*dim : (int(h)+1)*dim] {
			v := float64(x)
			b[d] += c * v
			yt[d*foldBlock+nb] = v
			zt[d*foldBlock+nb] = (c - 1) * v
		}
		if nb++; nb == foldBlock {
			flush()
		}
	}
	if nb > 0 {
		flush()
	}
	ok := used > 0 && cholesky(a, dim)
	if ok {
		solve(a, dim, b)
		for d := range out {
			out[d] = float32(b[d])
		}
	} else {
		clear(out)
	}
	f.pool.Put(bufp)
	return ok
}

// addGram adds zt_r . yt_c (length nb, rows foldBlock apart) to a[r][c]
// for the lower triangle, two rows by four columns at a time: eight sums
// from six loads per step where one dot product takes two loads per sum.
// Blocks straddling the diagonal also write up to three entries above it
// (a[r][c] with c <= r+3), which nothing reads; row r has room for them
// except near the end, where the remainder goes column by column.
func addGram(a []float64, dim int, zt, yt []float64, nb int) {
	col := func(c int) []float64 { return yt[c*foldBlock : c*foldBlock+nb] }
	r := 0
	for ; r+2 <= dim; r += 2 {
		z0 := zt[r*foldBlock : r*foldBlock+nb]
		z1 := zt[(r+1)*foldBlock : (r+1)*foldBlock+nb]
		a0, a1 := a[r*dim:(r+1)*dim], a[(r+1)*dim:(r+2)*dim]
		c := 0
		for ; c <= r && c+4 <= dim; c += 4 {
			y0, y1, y2, y3 := col(c), col(c+1), col(c+2), col(c+3)
			z1, y0, y1, y2, y3 := z1[:len(z0)], y0[:len(z0)], y1[:len(z0)], y2[:len(z0)], y3[:len(z0)]
			var s00, s01, s02, s03, s10, s11, s12, s13 float64
			for k, u := range z0 {
				v, p0, p1, p2, p3 := z1[k], y0[k], y1[k], y2[k], y3[k]
				s00 += u * p0
				s01 += u * p1
				s02 += u * p2
				s03 += u * p3
				s10 += v * p0
				s11 += v * p1
				s12 += v * p2
				s13 += v * p3
			}
			a0[c] += s00
			a0[c+1] += s01
			a0[c+2] += s02
			a0[c+3] += s03
			a1[c] += s10
			a1[c+1] += s11
			a1[c+2] += s12
			a1[c+3] += s13
		}
		for ; c <= r+1; c++ {
			a0[c] += dot64(z0, col(c))
			a1[c] += dot64(z1, col(c))
		}
	}
	if r < dim { // odd dim: the last row
		zr := zt[r*foldBlock : r*foldBlock+nb]
		ar := a[r*dim : r*dim+r+1]
		for c := range ar {
			ar[c] += dot64(zr, col(c))
		}
	}
}

// dot4 is x . a, x . b, x . c and x . d over len(x).
func dot4(x, a, b, c, d []float64) (sa, sb, sc, sd float64) {
	a, b, c, d = a[:len(x)], b[:len(x)], c[:len(x)], d[:len(x)]
	for k, v := range x {
		sa += v * a[k]
		sb += v * b[k]
		sc += v * c[k]
		sd += v * d[k]
	}
	return sa, sb, sc, sd
}

// dot64 is x . y over len(x) (y at least as long), with four partial sums
// so the additions do not wait on each other.
func dot64(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// cholesky factors the symmetric positive definite a (dim x dim,
// row-major, lower triangle read) in place into L with a = L L^T, in the
// lower triangle. It reports false if a is not positive definite (which
// lambda > 0 rules out but rounding on a degenerate input could not).
func cholesky(a []float64, dim int) bool {
	for j := range dim {
		rj := a[j*dim : j*dim+j+1]
		s := rj[j] - dot64(rj[:j], rj)
		if !(s > 0) {
			return false
		}
		d := math.Sqrt(s)
		rj[j] = d
		inv := 1 / d
		// Four rows at a time share the loads of row j: the column costs
		// five loads per four multiply-adds instead of eight.
		i := j + 1
		for ; i+4 <= dim; i += 4 {
			r0, r1 := a[i*dim:i*dim+j+1], a[(i+1)*dim:(i+1)*dim+j+1]
			r2, r3 := a[(i+2)*dim:(i+2)*dim+j+1], a[(i+3)*dim:(i+3)*dim+j+1]
			s0, s1, s2, s3 := dot4(rj[:j], r0, r1, r2, r3)
			r0[j] = (r0[j] - s0) * inv
			r1[j] = (r1[j] - s1) * inv
			r2[j] = (r2[j] - s2) * inv
			r3[j] = (r3[j] - s3) * inv
		}
		for ; i < dim; i++ {
			ri := a[i*dim : i*dim+j+1]
			ri[j] = (ri[j] - dot64(rj[:j], ri)) * inv
		}
	}
	return true
}

// solve overwrites b with x where L L^T x = b, L from cholesky.
func solve(l []float64, dim int, b []float64) {
	for i := range dim {
		ri := l[i*dim : i*dim+i+1]
		b[i] = (b[i] - dot64(ri[:i], b)) / ri[i]
	}
	for i := dim - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < dim; k++ {
			s -= l[k*dim+i] * b[k]
		}
		b[i] = s / l[i*dim+i]
	}
}

// Score is the predicted preference x . y_item (0 for an item out of
// range).
func (f *Factors) Score(x []float32, item int32) float32 {
	return dot(x, f.Item(item))
}

// ScoreAll sets out[i] to Score(x, i) for every item, bit for bit; out
// must hold Len() values and x Dim().
func (f *Factors) ScoreAll(x, out []float32) {
	if f.dim == 0 {
		clear(out[:f.items])
		return
	}
	index.DotRows(x[:f.dim], f.y, out[:f.items])
}

// dot is the SIMD dot product (vek32's AVX2 kernel where the CPU has
// it): every candidate of a recommendation gets its factor score, and the
// four-accumulator Go loop it replaces was about six times slower per row
// in a micro-benchmark (0.04-0.05 ms of a request in the profile).
func dot(x, y []float32) float32 {
	n := min(len(x), len(y))
	if n == 0 {
		return 0
	}
	return vek32.Dot(x[:n], y[:n])
}

// MIPSVectors returns the item factors as Len() unit vectors of Dim()+1
// (row-major, newly allocated) whose cosine with MIPSQuery(x) orders items
// as x . y does (the extra coordinate sqrt(M^2 - |y|^2) / M, M the largest
// norm), so a cosine HNSW answers the maximum-inner-product search. With
// all factors zero every vector is the last unit vector.
func (f *Factors) MIPSVectors() []float32 {
	dim := f.dim
	norms := make([]float64, f.items)
	var m float64
	for i := range f.items {
		var s float64
		for _, x := range f.y[i*dim : (i+1)*dim] {
			s += float64(x) * float64(x)
		}
		norms[i] = s
		m = max(m, s)
	}
	out := make([]float32, f.items*(dim+1))
	for i := range f.items {
		o := out[i*(dim+1) : (i+1)*(dim+1)]
		if m == 0 {
			o[dim] = 1
			continue
		}
		inv := 1 / math.Sqrt(m)
		for d, x := range f.y[i*dim : (i+1)*dim] {
			o[d] = float32(float64(x) * inv)
		}
		o[dim] = float32(math.Sqrt(max(0, 1-norms[i]/m)))
	}
	return out
}

// MIPSQuery writes the query vector of x for MIPSVectors into out
// (Dim()+1 entries): x / |x| and a 0. A zero x gives the zero vector,
// which no item matches; the caller should not search with it.
func (f *Factors) MIPSQuery(x []float32, out []float32) {
	dim := f.dim
	out = out[:dim+1]
	var s float64
	for _, v := range x[:dim] {
		s += float64(v) * float64(v)
	}
	out[dim] = 0
	if s == 0 {
		clear(out)
		return
	}
	inv := 1 / math.Sqrt(s)
	for d, v := range x[:dim] {
		out[d] = float32(float64(v) * inv)
	}
}
