//go:build !amd64

package index

type dot8Kernel struct {
	fn    func(*int16, *int8, int) int32
	block int
}

func dot8Kernels() map[string]dot8Kernel { return nil }
