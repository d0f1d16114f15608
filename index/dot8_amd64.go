package index

import "golang.org/x/sys/cpu"

// dot8AVX512 and dot8AVX2 return sum(q[i]*x[i]) for i < n, n > 0 for
// AVX-512 and a multiple of 16 for AVX2; see dot8_amd64.s.
//
//go:noescape
func dot8AVX512(q *int16, x *int8, n int) int32

//go:noescape
func dot8AVX2(q *int16, x *int8, n int) int32

// The x/sys/cpu flags already include the OS's support for the registers.
var (
	hasDot8AVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI
	hasDot8AVX2   = cpu.X86.HasAVX2
)

// dot8 is sum(q[i]*x[i]) over int16 query words and int8 codes, in int32.
// len(q) must be at least len(x). With AVX-512 one call scores every
// dimension (the kernel masks the tail): this is the hot call of every
// graph step, where a second call for the tail showed in profiles.
func dot8(q []int16, x []int8) int32 {
	n := len(x)
	if n == 0 {
		return 0
	}
	q = q[:n]
	if hasDot8AVX512 {
		return dot8AVX512(&q[0], &x[0], n)
	}
	if hasDot8AVX2 && n >= 16 {
		head := n &^ 15
		s := dot8AVX2(&q[0], &x[0], head)
		if head == n {
			return s
		}
		return s + dot8Go(q[head:], x[head:])
	}
	return dot8Go(q, x)
}
