//go:build !amd64

package index

// dot8 is sum(q[i]*x[i]) over int16 query words and int8 codes, in int32;
// no SIMD kernel here.
func dot8(q []int16, x []int8) int32 { return dot8Go(q, x) }
