//go:build !amd64

package index

// dotRowsKernel has no batched kernel here: dotRows calls vek32.Dot per row.
func dotRowsKernel(q, rows, out []float32) bool { return false }
