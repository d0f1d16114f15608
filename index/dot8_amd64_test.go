package index

type dot8Kernel struct {
	fn    func(*int16, *int8, int) int32
	block int
}

// dot8Kernels are the SIMD kernels this CPU runs, every one tested, not
// only the one dot8 picks.
func dot8Kernels() map[string]dot8Kernel {
	k := map[string]dot8Kernel{}
	if hasDot8AVX512 {
		k["avx512"] = dot8Kernel{dot8AVX512, 1}
	}
	if hasDot8AVX2 {
		k["avx2"] = dot8Kernel{dot8AVX2, 16}
	}
	return k
}
