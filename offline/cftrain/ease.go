package cftrain

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/recsys-dev/recsys/index/cf"
)

// trainEASE builds the item-to-item table from the closed-form item-item
// linear model (Steck 2019, "embarrassingly shallow autoencoders"): over
// the EaseItems most used items, B = I - P diag(1/diag(P)) with
// P = (X'X + lambda I)^-1 and X the binary users x items matrix, so the
// score of j for a history h is sum over i in h of B(i, j). Each row keeps
// its TopN positive entries; items outside the set have no neighbours
// (content and the factorisation reach them). The inverse is gonum's
// Cholesky: O(EaseItems^3) time, EaseItems^2 float64s of memory.
func trainEASE(ctx context.Context, in []Interaction, items int, now time.Time, cfg NeighboursConfig) (*cf.Neighbours, Report, error) {
	start := time.Now()
	m, rep, err := startTable(ctx, in, items, now, 0, 0)
	if err != nil {
		return nil, rep, err
	}

	// The most used items (ties by number) get dense indexes 0..n-1.
	used := make([]int32, 0, items)
	for i := range items {
		if us, _ := m.itemRow(i); len(us) > 0 {
			used = append(used, int32(i))
		}
	}
	slices.SortStableFunc(used, func(a, b int32) int {
		ua, _ := m.itemRow(int(a))
		ub, _ := m.itemRow(int(b))
		return cmp.Compare(len(ub), len(ua))
	})
	used = used[:min(len(used), cfg.EaseItems)]
	n := len(used)
	dense := make([]int32, items)
	for i := range dense {
		dense[i] = -1
	}
	for d, i := range used {
		dense[i] = int32(d)
	}

	// G = X'X + lambda I over the chosen items (binary X).
	g := make([]float64, n*n)
	var row []int32
	for u := range m.users {
		js, _ := m.userRow(u)
		row = row[:0]
		for _, j := range js {
			if d := dense[j]; d >= 0 {
				row = append(row, d)
			}
		}
		rep.Pairs += int64(len(row) * len(row))
		for _, a := range row {
			ga := g[int(a)*n : int(a)*n+n]
			for _, b := range row {
				ga[b]++
			}
		}
		if u%1024 == 0 && ctx.Err() != nil {
			return nil, rep, ctx.Err()
		}
	}
	for d := range n {
		g[d*n+d] += cfg.EaseLambda
	}
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, g)) {
		return nil, rep, fmt.Errorf("train neighbours: X'X + lambda I is not positive definite (raise ease_lambda)")
	}
	if err := ctx.Err(); err != nil {
		return nil, rep, err
	}
	var p mat.SymDense
	if err := ch.InverseTo(&p); err != nil {
		return nil, rep, fmt.Errorf("train neighbours: invert: %w", err)
	}

	// Row i (a history item) lists the j of largest B(i, j) = -P(i, j) /
	// P(j, j).
	diag := make([]float64, n)
	for d := range n {
		diag[d] = p.At(d, d)
	}
	rows := make([][]nb, items)
	var h []nb
	for a := range n {
		h = h[:0]
		for b := range n {
			if b == a {
				continue
			}
			if w := -p.At(a, b) / diag[b]; w > 0 && !math.IsInf(w, 0) {
				h = pushTop(h, nb{used[b], float32(w)}, cfg.TopN)
			}
		}
		rows[used[a]] = sortedRow(h)
		h = h[:0]
	}
	offsets := make([]int32, items+1)
	total := 0
	for i, r := range rows {
		total += len(r)
		offsets[i+1] = int32(total)
	}
	ids, sims := make([]int32, 0, total), make([]float32, 0, total)
	for _, r := range rows {
		for _, e := range r {
			ids, sims = append(ids, e.id), append(sims, e.sim)
		}
	}
	nbs, err := cf.NewNeighbours(items, offsets, ids, sims)
	if err != nil {
		return nil, rep, fmt.Errorf("train neighbours: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return nbs, rep, nil
}
