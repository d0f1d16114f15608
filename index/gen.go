package index

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Distributions GenVectors can draw, for benchmarks and tests. Uniform
// random unit vectors are the easy case for nothing: at high dimension all
// distances look alike. Real embeddings are clustered and of low intrinsic
// rank, so those are what the index is measured on.
const (
	DistClustered = "clustered"
	DistLowRank   = "lowrank"
)

// lowRank is the intrinsic dimension of DistLowRank data.
const lowRank = 32

// GenVectors returns n unit vectors of dimension dim drawn from dist,
// deterministic in seed. Draws with the same seed and a different stream
// (e.g. queries) come from the same distribution: the structure (cluster
// centres, projection) depends only on seed, the points on stream.
func GenVectors(dist string, n, dim int, seed, stream uint64) ([]float32, error) {
	if n <= 0 || dim <= 0 {
		return nil, fmt.Errorf("gen vectors: n %d and dim %d must be > 0", n, dim)
	}
	structure := rand.New(rand.NewPCG(seed, 0))
	r := rand.New(rand.NewPCG(seed, stream+1))
	v := make([]float32, n*dim)
	switch dist {
	case DistClustered:
		// About 100 points per cluster in the base set; a point is its
		// centre plus noise of about 0.7 the centre's length.
		centres := make([]float32, max(n/100, 10)*dim)
		if len(centres)/dim > 10000 {
			centres = centres[:10000*dim]
		}
		for i := range centres {
			centres[i] = float32(structure.NormFloat64())
		}
		Normalize(centres, dim)
		nc := len(centres) / dim
		sigma := 0.7 / math.Sqrt(float64(dim))
		for i := range n {
			c := centres[r.IntN(nc)*dim:]
			for j := range dim {
				v[i*dim+j] = c[j] + float32(sigma*r.NormFloat64())
			}
		}
	case DistLowRank:
		// x = A z + noise with z in R^32 and noise carrying a tenth of the
		// energy, so neighbours are decided mostly in 32 dimensions.
		a := make([]float64, dim*lowRank)
		for i := range a {
			a[i] = structure.NormFloat64()
		}
		sigma := math.Sqrt(0.1 * lowRank)
		z := make([]float64, lowRank)
		for i := range n {
			for j := range z {
				z[j] = r.NormFloat64()
			}
			for j := range dim {
				var s float64
				row := a[j*lowRank : (j+1)*lowRank]
				for t, x := range z {
					s += row[t] * x
				}
				v[i*dim+j] = float32(s + sigma*r.NormFloat64())
			}
		}
	default:
		return nil, fmt.Errorf("gen vectors: unknown distribution %q (want %q or %q)", dist, DistClustered, DistLowRank)
	}
	Normalize(v, dim)
	return v, nil
}
