package index

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHeaps drives both heaps with random pushes, pops, replacements and
// a heapify, checking each result against a sorted reference.
func TestHeaps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	t.Run("min", func(t *testing.T) {
		var h minDist
		var ref []float32
		for step := range 20000 {
			switch {
			case r.IntN(2) == 0 || len(ref) == 0:
				d := float32(r.IntN(50)) // many ties
				h.push(distID{d, int32(step)})
				ref = append(ref, d)
			default:
				slices.Sort(ref)
				if got := h.pop().d; got != ref[0] {
					t.Fatalf("step %d: pop %v, want %v", step, got, ref[0])
				}
				ref = ref[1:]
			}
			if step%5000 == 0 {
				r.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
				h.heapify()
			}
		}
		slices.Sort(ref)
		for i := range ref {
			if got := h.pop().d; got != ref[i] {
				t.Fatalf("draining: pop %v, want %v", got, ref[i])
			}
		}
	})
	t.Run("max", func(t *testing.T) {
		var h maxDist
		var ref []float32
		for step := range 20000 {
			d := float32(r.IntN(50))
			switch op := r.IntN(3); {
			case op == 0 || len(ref) == 0:
				h.push(distID{d, int32(step)})
				ref = append(ref, d)
			case op == 1:
				slices.Sort(ref)
				if got := h.pop().d; got != ref[len(ref)-1] {
					t.Fatalf("step %d: pop %v, want %v", step, got, ref[len(ref)-1])
				}
				ref = ref[:len(ref)-1]
			default:
				slices.Sort(ref)
				h.replaceTop(distID{d, int32(step)})
				ref[len(ref)-1] = d
			}
			if len(ref) > 0 && h[0].d != slices.Max(ref) {
				t.Fatalf("step %d: root %v, want %v", step, h[0].d, slices.Max(ref))
			}
		}
	})
}
