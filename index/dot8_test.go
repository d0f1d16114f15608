package index

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestDot8 checks every kernel this CPU has against the portable one, on
// every length up to a few blocks (so each tail path runs) and at the
// extremes the quantiser produces.
func TestDot8(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	kernels := dot8Kernels()
	if len(kernels) == 0 {
		t.Log("no SIMD kernel on this platform; only the portable one runs")
	}
	for name, fill := range map[string]func(q []int16, x []int8){
		"random": func(q []int16, x []int8) {
			for i := range x {
				q[i] = int16(r.IntN(65535) - 32767)
				x[i] = int8(r.IntN(255) - 127)
			}
		},
		"extremes": func(q []int16, x []int8) {
			for i := range x {
				q[i], x[i] = 32767, -127
				if i%3 == 0 {
					q[i], x[i] = -32767, -127
				}
			}
		},
	} {
		for n := 0; n <= 200; n++ {
			q, x := make([]int16, n), make([]int8, n)
			fill(q, x)
			var want int64
			for i := range x {
				want += int64(q[i]) * int64(x[i])
			}
			if got := dot8Go(q, x); int64(got) != want {
				t.Fatalf("%s n=%d: dot8Go = %d, want %d", name, n, got, want)
			}
			if got := dot8(q, x); int64(got) != want {
				t.Fatalf("%s n=%d: dot8 = %d, want %d", name, n, got, want)
			}
			for kname, k := range kernels {
				if n < k.block {
					continue
				}
				head := n - n%k.block
				var w int64
				for i := range head {
					w += int64(q[i]) * int64(x[i])
				}
				if got := k.fn(&q[0], &x[0], head); int64(got) != w {
					t.Fatalf("%s n=%d: %s kernel = %d, want %d", name, n, kname, got, w)
				}
			}
		}
	}
}

func BenchmarkDot8(b *testing.B) {
	for _, dim := range []int{128, 384} {
		q := make([]int16, dim)
		x := make([]int8, dim)
		f := randomUnit(1, 2, dim)
		for i := range x {
			q[i], x[i] = int16(i*7-300), int8(i%200-100)
		}
		b.Run(fmt.Sprintf("int8/dim=%d", dim), func(b *testing.B) {
			b.ReportAllocs()
			var s int32
			for b.Loop() {
				s += dot8(q, x)
			}
			_ = s
		})
		b.Run(fmt.Sprintf("go/dim=%d", dim), func(b *testing.B) {
			b.ReportAllocs()
			var s int32
			for b.Loop() {
				s += dot8Go(q, x)
			}
			_ = s
		})
		b.Run(fmt.Sprintf("float32/dim=%d", dim), func(b *testing.B) {
			b.ReportAllocs()
			h := &HNSW{dim: dim, n: 2, vecs: f}
			var s float32
			for b.Loop() {
				s += h.dist(f[:dim], 1)
			}
			_ = s
		})
	}
}
