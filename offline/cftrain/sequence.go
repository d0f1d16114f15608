package cftrain

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/recsys-dev/recsys/index/cf"
)

// trainSequence builds the item-to-item table from what users engaged
// with next: each user's items in time order (a pair's newest
// interaction places it), and for item i every item j within Window places
// after it counts c(i, j) += w(u, j), every one within Window before it
// Back * w(u, j). The similarity is c(i, j) / (n(i)^Alpha * n(j)^(1-Alpha))
// as in the cosine, without shrinkage. Where co-engagement says "liked
// together", this says "liked next": on MovieLens's per-user time split it
// is a weak order alone and a strong complement to the factorisation,
// since the held-out ratings continue the user's latest ones.
func trainSequence(ctx context.Context, in []Interaction, items int, now time.Time, cfg NeighboursConfig) (*cf.Neighbours, Report, error) {
	start := time.Now()
	m, rep, err := startTable(ctx, in, items, now, cfg.HalfLife, cfg.MaxUserItems)
	if err != nil {
		return nil, rep, err
	}

	// seq holds each user's row in time order (ties by item), as indexes
	// into the matrix's user rows; pos is every entry's place in it.
	seq := make([]int, len(m.uItem))
	pos := make([]int32, len(m.uItem))
	for u := range m.users {
		lo, hi := m.uStart[u], m.uStart[u+1]
		row := seq[lo:hi]
		for k := range row {
			row[k] = lo + k
		}
		slices.SortFunc(row, func(a, b int) int {
			return cmp.Or(cmp.Compare(m.uLast[a], m.uLast[b]), cmp.Compare(m.uItem[a], m.uItem[b]))
		})
		for k, e := range row {
			pos[e] = int32(k)
		}
	}
	// Each item's places, aligned with its matrix row of users: the
	// item rows were filled visiting the user rows in this order.
	iPos := make([]int32, len(m.iUser))
	next := slices.Clone(m.iStart[:items])
	for e, i := range m.uItem {
		iPos[next[i]] = pos[e]
		next[i]++
	}
	nA, nB := popularity(m, cfg.Alpha)

	rows, np, err := itemRows(ctx, items, workerCount(cfg.Workers), cfg.TopN, func(st *rowState, i int) int64 {
		var np int64
		add := func(e int, f float64) {
			if j := m.uItem[e]; int(j) != i {
				st.add(j, f*float64(m.uW[e]))
				np++
			}
		}
		for k := m.iStart[i]; k < m.iStart[i+1]; k++ {
			u, p := int(m.iUser[k]), int(iPos[k])
			row := seq[m.uStart[u]:m.uStart[u+1]]
			for d := 1; d <= cfg.Window; d++ {
				if p+d < len(row) {
					add(row[p+d], 1)
				}
				if cfg.Back > 0 && p-d >= 0 {
					add(row[p-d], cfg.Back)
				}
			}
		}
		return np
	}, func(i int, j int32, c float64) float32 { return float32(c / (nA[i] * nB[j])) })
	return finishTable(rows, np, err, rep, start)
}
