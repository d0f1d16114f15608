package index

import (
	"fmt"

	"github.com/viterin/vek/vek32"
)

// dotRows sets out[i] to vek32.Dot(q, rows[i*d:(i+1)*d]) for every row,
// d = len(q) > 0, bit for bit (the same instructions in the same order;
// the exact scan's answers must equal the graph's exact fallback, which
// scores one row at a time). One call for a block of rows instead of one
// per row: at the factor index's 33 dimensions the per-row call cost more
// than its arithmetic. rows must hold len(out) rows.
func dotRows(q, rows, out []float32) {
	d, n := len(q), len(out)
	if n == 0 {
		return
	}
	if d == 0 || len(rows) < n*d {
		panic(fmt.Sprintf("index: dotRows over %d rows of dim %d given %d values", n, d, len(rows)))
	}
	if dotRowsKernel(q, rows[:n*d], out) {
		return
	}
	for i := range out {
		out[i] = vek32.Dot(q, rows[i*d:(i+1)*d])
	}
}
