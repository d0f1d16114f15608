package cftrain

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/index/cf"
)

// TrainNeighbours builds the item-to-item table over items items: for
// each item i the TopN items j with the highest sim(i, j) (see
// NeighboursConfig), best first, ties by item number. Items nobody
// co-engaged with have no neighbours.
//
// It works item by item with a dense accumulator (for item i: for each
// user of i, for each other item of that user), so memory stays
// O(items*workers + interactions + items*TopN) however many pairs there
// are; the time is the pairs, sum over users of their items squared, which
// MaxUserItems bounds.
func TrainNeighbours(ctx context.Context, in []Interaction, items int, now time.Time, cfg NeighboursConfig) (*cf.Neighbours, Report, error) {
	start := time.Now()
	var rep Report
	if err := cfg.Validate(); err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	switch cfg.Method {
	case MethodEASE:
		return trainEASE(ctx, in, items, now, cfg)
	case MethodSequence:
		return trainSequence(ctx, in, items, now, cfg)
	}
	m, rep, err := startTable(ctx, in, items, now, cfg.HalfLife, cfg.MaxUserItems)
	if err != nil {
		return nil, rep, err
	}

	nA, nB := popularity(m, cfg.Alpha)

	rows, np, err := itemRows(ctx, items, workerCount(cfg.Workers), cfg.TopN, func(st *rowState, i int) int64 {
		var np int64
		us, uws := m.itemRow(i)
		for k, u := range us {
			wi := float64(uws[k])
			js, jws := m.userRow(int(u))
			np += int64(len(js) - 1)
			for q, j := range js {
				if int(j) != i {
					st.add(j, wi*float64(jws[q]))
				}
			}
		}
		return np
	}, func(i int, j int32, c float64) float32 {
		return float32(c / (nA[i] * nB[j]) * (c / (c + cfg.Shrink)))
	})
	return finishTable(rows, np, err, rep, start)
}

// popularity is n(i)^alpha and n(i)^(1-alpha) for every item, n the sum
// of its weights: the discounts of sim(i, j), once per item rather than
// per pair.
func popularity(m *matrix, alpha float64) (nA, nB []float64) {
	nA, nB = make([]float64, m.items), make([]float64, m.items)
	for i := range m.items {
		_, ws := m.itemRow(i)
		var n float64
		for _, w := range ws {
			n += float64(w)
		}
		nA[i], nB[i] = math.Pow(n, alpha), math.Pow(n, 1-alpha)
	}
	return nA, nB
}

// rowState is one worker's memory for building rows: a dense
// accumulator over the items, the entries it touched and a top-N heap.
type rowState struct {
	acc     []float64
	touched []int32
	heap    []nb
}

// add accumulates v > 0 for item j. Contributions are positive, so an
// accumulator at 0 is untouched.
func (st *rowState) add(j int32, v float64) {
	if st.acc[j] == 0 {
		st.touched = append(st.touched, j)
	}
	st.acc[j] += v
}

// itemRows builds every item's row in parallel: fill adds item i's
// contributions to st and returns how many it added, sim turns an
// accumulated c for (i, j) into the similarity, and each row keeps the
// topN best. It returns the rows and the contributions counted.
func itemRows(ctx context.Context, items, workers, topN int, fill func(st *rowState, i int) int64, sim func(i int, j int32, c float64) float32) ([][]nb, int64, error) {
	states := make([]*rowState, workers)
	rows := make([][]nb, items)
	var pairs atomic.Int64
	err := parallel(ctx, items, workers, 64, func(w, lo, hi int) {
		st := states[w]
		if st == nil {
			st = &rowState{acc: make([]float64, items)}
			states[w] = st
		}
		var np int64
		for i := lo; i < hi; i++ {
			st.touched = st.touched[:0]
			np += fill(st, i)
			h := st.heap[:0]
			for _, j := range st.touched {
				c := st.acc[j]
				st.acc[j] = 0
				h = pushTop(h, nb{j, sim(i, j, c)}, topN)
			}
			rows[i] = sortedRow(h)
			st.heap = h[:0]
		}
		pairs.Add(np)
	})
	return rows, pairs.Load(), err
}

// startTable builds the matrix a table is trained from and the report's
// counts.
func startTable(ctx context.Context, in []Interaction, items int, now time.Time, halfLife time.Duration, maxUser int) (*matrix, Report, error) {
	var rep Report
	m, err := buildMatrix(ctx, in, -1, items, now, halfLife, maxUser)
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Users, rep.Items, rep.Interactions = m.users, items, len(m.uItem)
	return m, rep, nil
}

// finishTable assembles the rows itemRows built (pairs contributions,
// err its error) into the table and completes rep.
func finishTable(rows [][]nb, pairs int64, err error, rep Report, start time.Time) (*cf.Neighbours, Report, error) {
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Pairs = pairs
	n, err := assemble(rep.Items, rows)
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return n, rep, nil
}

// assemble turns per-item rows, best first, into the table, releasing
// the rows as it goes.
func assemble(items int, rows [][]nb) (*cf.Neighbours, error) {
	offsets := make([]int32, items+1)
	total := 0
	for i, r := range rows {
		total += len(r)
		if total > math.MaxInt32 {
			return nil, fmt.Errorf("more than %d entries (lower top_n)", math.MaxInt32)
		}
		offsets[i+1] = int32(total)
	}
	ids, sims := make([]int32, 0, total), make([]float32, 0, total)
	for i, r := range rows {
		for _, e := range r {
			ids, sims = append(ids, e.id), append(sims, e.sim)
		}
		rows[i] = nil
	}
	return cf.NewNeighbours(items, offsets, ids, sims)
}

// nb is one neighbour on the way to the table.
type nb struct {
	id  int32
	sim float32
}

// worseNb is the table's order reversed: lower similarity, or equal and
// the higher item number, is worse. It compares the float32 similarity
// the table stores, so the row is best first exactly as NewNeighbours
// checks it.
func worseNb(a, b nb) bool { return a.sim < b.sim || a.sim == b.sim && a.id > b.id }

// pushTop keeps the best k in h, a min-heap on worseNb.
func pushTop(h []nb, x nb, k int) []nb {
	if len(h) == k {
		if !worseNb(h[0], x) {
			return h
		}
		h[0] = x
		downNb(h, 0)
		return h
	}
	h = append(h, x)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !worseNb(x, h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
	return h
}

func downNb(h []nb, i int) {
	x := h[i]
	for {
		m := 2*i + 1
		if m >= len(h) {
			break
		}
		if r := m + 1; r < len(h) && worseNb(h[r], h[m]) {
			m = r
		}
		if !worseNb(h[m], x) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

// sortedRow copies the heap out best first.
func sortedRow(h []nb) []nb {
	if len(h) == 0 {
		return nil
	}
	r := slices.Clone(h)
	slices.SortFunc(r, func(a, b nb) int {
		if worseNb(b, a) {
			return -1
		}
		return 1
	})
	return r
}
