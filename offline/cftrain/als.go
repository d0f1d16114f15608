package cftrain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/recsys-dev/recsys/index/cf"
)

// initScale is the standard deviation of the random initial item
// factors: small, so the first user step starts near the regularised
// zero solution and no factor dominates by chance.
const initScale = 0.01

// TrainALS factorises the users x items confidence matrix with implicit
// alternating least squares (Hu, Koren and Volinsky 2008): preference
// p = 1 for every observed (user, item) pair with confidence c = 1 +
// Alpha*weight (weights decayed by HalfLife and summed over duplicates),
// p = 0 with c = 1 elsewhere. Each iteration solves every user given the
// items, then every item given the users, exactly (the YtY trick and a
// Cholesky solve). The solves are cf.Factors.FoldIn, the very
// arithmetic the engine uses at request time, so a user folded in at
// serving gets the vector this training would have given them. Only the
// item factors are returned; items without interactions get zero
// vectors (they score 0 for everyone). users bounds the user numbers.
// The result depends only on the input, the config and Seed, not on
// Workers. The cost is about Iterations * (interactions*2*Factors^2/2 +
// (users+items)*Factors^3/6) multiply-adds: 31 s for a million
// interactions of 50k users on 10k items at 64 factors, 7.6 s at 32 (the
// default), on two cores.
func TrainALS(ctx context.Context, in []Interaction, users, items int, now time.Time, cfg ALSConfig) (*cf.Factors, Report, error) {
	start := time.Now()
	var rep Report
	if err := cfg.Validate(); err != nil {
		return nil, rep, fmt.Errorf("train als: %w", err)
	}
	if users < 0 {
		return nil, rep, fmt.Errorf("train als: %w: users %d is negative", ErrInput, users)
	}
	m, err := buildMatrix(ctx, in, users, items, now, cfg.HalfLife, 0)
	if err != nil {
		return nil, rep, fmt.Errorf("train als: %w", err)
	}
	rep.Users, rep.Items, rep.Interactions = m.users, items, len(m.uItem)

	dim := cfg.Factors
	lambda, alpha := float32(cfg.Lambda), float32(cfg.Alpha)
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	y := make([]float32, items*dim)
	for k := range y {
		y[k] = float32(rng.NormFloat64() * initScale)
	}
	x := make([]float32, m.users*dim)
	workers := workerCount(cfg.Workers)
	for range cfg.Iterations {
		// Each half step wraps the fixed side in a cf.Factors (which
		// computes its Gram matrix) and folds the other side in. The
		// wrapper is dropped before the slice it holds is rewritten.
		fy, err := cf.NewFactors(items, dim, y, lambda, alpha)
		if err != nil {
			return nil, rep, fmt.Errorf("train als: %w", err)
		}
		if err := solveRows(ctx, fy, m.users, dim, workers, m.userRow, x); err != nil {
			return nil, rep, fmt.Errorf("train als: %w", err)
		}
		fx, err := cf.NewFactors(m.users, dim, x, lambda, alpha)
		if err != nil {
			return nil, rep, fmt.Errorf("train als: %w", err)
		}
		if err := solveRows(ctx, fx, items, dim, workers, m.itemRow, y); err != nil {
			return nil, rep, fmt.Errorf("train als: %w", err)
		}
	}
	f, err := cf.NewFactors(items, dim, y, lambda, alpha)
	if err != nil {
		return nil, rep, fmt.Errorf("train als: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return f, rep, nil
}

// solveRows sets out's row r (of rows) to fixed's fold-in of row(r).
// Chunks are small: row costs range from one interaction to a popular
// item's many thousands.
func solveRows(ctx context.Context, fixed *cf.Factors, rows, dim, workers int, row func(int) ([]int32, []float32), out []float32) error {
	return parallel(ctx, rows, workers, 8, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			cols, ws := row(r)
			fixed.FoldIn(cols, ws, out[r*dim:(r+1)*dim]) // zero when empty
		}
	})
}
