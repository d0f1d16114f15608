package index

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/viterin/vek/vek32"
)

// The batched kernel must give vek32.Dot's answer bit for bit: the exact
// scan and the graph's exact fallback are compared exactly elsewhere, and
// a last-bit difference reorders ties. Dimensions cover under one block,
// exactly one, one plus a tail, several, and the anchor widths; values
// span magnitudes so that a different summation order would round
// differently.
func TestDotRows_MatchesDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, dim := range []int{1, 2, 7, 8, 31, 32, 33, 63, 64, 65, 96, 100, 128, 129, 384} {
		for _, n := range []int{1, 2, 17, 300} {
			q := make([]float32, dim)
			rows := make([]float32, n*dim)
			for i := range q {
				q[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()*3))
			}
			for i := range rows {
				rows[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()*3))
			}
			out := make([]float32, n+1)
			out[n] = 42 // past the rows: must stay untouched
			dotRows(q, rows, out[:n])
			for i := range n {
				want := vek32.Dot(q, rows[i*dim:(i+1)*dim])
				if math.Float32bits(out[i]) != math.Float32bits(want) {
					t.Fatalf("dim %d row %d of %d: %v (%#x), vek32.Dot %v (%#x)",
						dim, i, n, out[i], math.Float32bits(out[i]), want, math.Float32bits(want))
				}
			}
			if out[n] != 42 {
				t.Fatalf("dim %d n %d: wrote past the rows", dim, n)
			}
		}
	}
}

func TestDotRows_ShortRowsPanic(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("rows shorter than out*dim did not panic")
		}
	}()
	dotRows(make([]float32, 4), make([]float32, 7), make([]float32, 2))
}

// The exact scan's blocks: more items than one block, a k past a block,
// and the answer equal to scoring each row alone with vek32.Dot.
func TestExact_SearchAcrossBlocks(t *testing.T) {
	const dim = 33
	n := 3*scanBlock + 5
	e := mustExact(t, dim, randomUnit(21, n, dim))
	q := randomUnit(22, 1, dim)
	for _, k := range []int{1, 10, scanBlock + 3, n} {
		got := e.Search(q, k, nil)
		want := make([]Hit, n)
		for i := range n {
			want[i] = Hit{ID: int32(i), Score: vek32.Dot(q, e.Vector(int32(i)))}
		}
		slices.SortFunc(want, compareHits)
		want = want[:k]
		if len(got) != len(want) {
			t.Fatalf("k %d: %d hits, want %d", k, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("k %d hit %d: %+v, want %+v", k, i, got[i], want[i])
			}
		}
	}
}

func BenchmarkDotRows(b *testing.B) {
	const dim, n = 33, 10_000
	q := randomUnit(1, 1, dim)
	rows := randomUnit(2, n, dim)
	out := make([]float32, scanBlock)
	b.Run("batched", func(b *testing.B) {
		for b.Loop() {
			for base := 0; base < n; base += scanBlock {
				m := min(scanBlock, n-base)
				dotRows(q, rows[base*dim:], out[:m])
			}
		}
	})
	b.Run("per-row", func(b *testing.B) {
		for b.Loop() {
			for i := range n {
				out[i%scanBlock] = vek32.Dot(q, rows[i*dim:(i+1)*dim])
			}
		}
	})
}
