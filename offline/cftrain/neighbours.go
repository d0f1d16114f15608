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
	m, err := buildMatrix(ctx, in, -1, items, now, cfg.HalfLife, cfg.MaxUserItems)
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Users, rep.Items, rep.Interactions = m.users, items, len(m.uItem)

	// n(i)^Alpha and n(j)^(1-Alpha), once per item rather than per pair.
	nA, nB := make([]float64, items), make([]float64, items)
	for i := range items {
		_, ws := m.itemRow(i)
		var n float64
		for _, w := range ws {
			n += float64(w)
		}
		nA[i], nB[i] = math.Pow(n, cfg.Alpha), math.Pow(n, 1-cfg.Alpha)
	}

	workers := workerCount(cfg.Workers)
	type state struct {
		acc     []float64
		touched []int32
		heap    []nb
	}
	states := make([]*state, workers)
	rows := make([][]nb, items)
	var pairs atomic.Int64
	err = parallel(ctx, items, workers, 64, func(w, lo, hi int) {
		st := states[w]
		if st == nil {
			st = &state{acc: make([]float64, items)}
			states[w] = st
		}
		var np int64
		for i := lo; i < hi; i++ {
			us, uws := m.itemRow(i)
			acc, touched := st.acc, st.touched[:0]
			for k, u := range us {
				wi := float64(uws[k])
				js, jws := m.userRow(int(u))
				np += int64(len(js) - 1)
				for q, j := range js {
					if int(j) == i {
						continue
					}
					// Weights are positive float32s, so a product in
					// float64 is never 0: 0 means untouched.
					if acc[j] == 0 {
						touched = append(touched, j)
					}
					acc[j] += wi * float64(jws[q])
				}
			}
			h := st.heap[:0]
			for _, j := range touched {
				c := acc[j]
				acc[j] = 0
				s := float32(c / (nA[i] * nB[j]) * (c / (c + cfg.Shrink)))
				h = pushTop(h, nb{j, s}, cfg.TopN)
			}
			rows[i] = sortedRow(h)
			st.touched, st.heap = touched[:0], h[:0]
		}
		pairs.Add(np)
	})
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Pairs = pairs.Load()

	n, err := assemble(items, rows)
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
