package index

import (
	"math"
	"runtime"
	"sync"
)

// Quantisation schemes (Config.Quantize).
const (
	QuantizeNone = "none"
	QuantizeInt8 = "int8"
)

var quantizers = []string{"", QuantizeNone, QuantizeInt8}

// quantizer maps unit vectors to int8 codes, one scale per dimension:
// value ~ code * scale[j], codes in -127..127. A scale per dimension
// rather than one for the whole matrix because embeddings spread their
// energy unevenly: a dimension with a small range would otherwise get
// few of the 255 steps. The query is not rounded to int8 but to int16
// (see prepare), so nearly all the error is the codes' and a walk on codes
// ranks like one on float32 except among near-ties, which the float32
// re-scoring of the best candidates then settles.
type quantizer struct {
	scale []float32 // per dimension
}

// maxCode is the largest code magnitude. -128 is never used, so the
// codes are symmetric and a negated vector has negated codes.
const maxCode = 127

// trainQuantizer sets each dimension's scale from its largest magnitude
// over vecs, so no value is clipped.
func trainQuantizer(dim int, vecs []float32) *quantizer {
	mx := make([]float32, dim)
	for i := 0; i+dim <= len(vecs); i += dim {
		for j, x := range vecs[i : i+dim] {
			mx[j] = max(mx[j], float32(math.Abs(float64(x))))
		}
	}
	for j := range mx {
		mx[j] /= maxCode
	}
	return &quantizer{scale: mx}
}

// encode writes the codes of vecs (row-major, len(scale) wide) into codes,
// spread over all cores.
func (qz *quantizer) encode(vecs []float32, codes []int8) {
	dim := len(qz.scale)
	n := len(vecs) / dim
	inv := make([]float32, dim)
	for j, s := range qz.scale {
		if s > 0 {
			inv[j] = 1 / s
		}
	}
	workers := min(runtime.GOMAXPROCS(0), max(n/4096, 1))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			for i := lo * dim; i < hi*dim; i += dim {
				row, out := vecs[i:i+dim], codes[i:i+dim]
				for j, x := range row {
					out[j] = int8(max(-maxCode, min(maxCode, math.Round(float64(x*inv[j])))))
				}
			}
		})
	}
	wg.Wait()
}

// prepare writes q's int16 codes for dot8 against the int8 codes and
// returns the factor that turns their dot product into the estimate of
// q . x: w = q * scale is rounded to dst*factor, the largest |w| going to
// the largest code that cannot overflow an int32 sum over len(q)
// dimensions. ok is false for a query that cannot be quantised (NaN or
// infinite values); the caller then walks on float32.
func (qz *quantizer) prepare(q []float32, dst []int16) (factor float32, ok bool) {
	dst = dst[:len(q)]
	var m float64
	for j, x := range q {
		w := math.Abs(float64(x) * float64(qz.scale[j]))
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return 0, false
		}
		m = max(m, w)
	}
	if m == 0 {
		clear(dst)
		return 0, true
	}
	qmax := min(math.MaxInt16, float64(math.MaxInt32/(maxCode*len(q))))
	f := m / qmax
	for j, x := range q {
		dst[j] = int16(math.Round(float64(x) * float64(qz.scale[j]) / f))
	}
	return float32(f), true
}
