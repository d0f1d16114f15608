package index

// dot8Go is the portable kernel, also the reference the SIMD ones are
// tested against.
func dot8Go(q []int16, x []int8) int32 {
	q = q[:len(x)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += int32(q[i]) * int32(x[i])
		s1 += int32(q[i+1]) * int32(x[i+1])
		s2 += int32(q[i+2]) * int32(x[i+2])
		s3 += int32(q[i+3]) * int32(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += int32(q[i]) * int32(x[i])
	}
	return s0 + s1 + s2 + s3
}
