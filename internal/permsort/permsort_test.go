package permsort

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

type record struct {
	key  int
	seq  int
	name *string
	pad  [12]float64
}

// TestSort_StableLikeSlices: the order of slices.SortStableFunc, for
// random lengths and keys with many ties, and a buffer reused across
// calls of different lengths.
func TestSort_StableLikeSlices(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b Buffers[record]
	byKey := func(x, y record) int { return cmp.Compare(y.key, x.key) }
	for trial := range 200 {
		n := rng.IntN(600)
		s := make([]record, n)
		for i := range s {
			name := "r"
			s[i] = record{key: rng.IntN(1 + trial%40), seq: i, name: &name}
		}
		want := slices.Clone(s)
		slices.SortStableFunc(want, byKey)
		b.Sort(s, func(x, y *record) int { return byKey(*x, *y) })
		for i := range s {
			if s[i].key != want[i].key || s[i].seq != want[i].seq || s[i].name != want[i].name {
				t.Fatalf("trial %d (n %d): position %d is %+v, want %+v", trial, n, i, s[i], want[i])
			}
		}
		for _, r := range b.moved[:cap(b.moved)] {
			if r.name != nil {
				t.Fatalf("trial %d: the buffer keeps a record's pointer", trial)
			}
		}
	}
}

// BenchmarkSort compares sorting 250 records of 120 bytes in place with
// sorting their positions.
func BenchmarkSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]record, 250)
	for i := range src {
		src[i] = record{key: rng.IntN(1 << 20), seq: i}
	}
	byKey := func(x, y *record) int { return cmp.Compare(y.key, x.key) }
	s := make([]record, len(src))
	b.Run("records", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			copy(s, src)
			slices.SortFunc(s, func(x, y record) int { return byKey(&x, &y) })
		}
	})
	b.Run("positions", func(b *testing.B) {
		var buf Buffers[record]
		b.ReportAllocs()
		for range b.N {
			copy(s, src)
			buf.Sort(s, byKey)
		}
	})
}
