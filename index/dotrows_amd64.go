package index

import (
	"runtime"

	"golang.org/x/sys/cpu"
)

// dotRowsAVX2 scores n rows of dim values against q into out; see
// dotrows_amd64.s.
//
//go:noescape
func dotRowsAVX2(q, x *float32, dim, n int, out *float32)

// The same condition under which vek32.Dot takes its AVX2 kernel, so the
// two agree bit for bit on every machine.
var hasDotRowsAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && runtime.GOOS != "darwin"

// dotRowsKernel runs the batched kernel when the CPU has it and reports
// whether it did.
func dotRowsKernel(q, rows, out []float32) bool {
	if !hasDotRowsAVX2 {
		return false
	}
	dotRowsAVX2(&q[0], &rows[0], len(q), len(out), &out[0])
	return true
}
