package rank

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrConstantFeatures is TrainLinear's error when no feature it may weigh
// varies, so no weight can order anything.
var ErrConstantFeatures = errors.New("train linear: every feature it may weigh is constant")

// LinearReport says what TrainLinear did.
type LinearReport struct {
	// Passes over the features, and the training NDCG@k at the start (the
	// best single feature) and at the end.
	Passes               int
	StartNDCG, TrainNDCG float64
}

// coordinate-ascent steps, in units of the feature's standard deviation
// relative to the largest weight.
var linearSteps = []float64{-2, -1, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1, 2}

// TrainLinear fits a linear ranker (a weight per feature, no bias: a
// query's constant does not change its order) that maximises the weighted
// NDCG@k of d by coordinate ascent (Metzler and Croft 2007): it starts from
// the best single feature, either sign, then tries each feature's weight
// moved by a few steps in turn and keeps a move that raises NDCG, for at
// most passes rounds or until a round changes nothing. Features are scaled
// by their standard deviation while searching, so the steps mean the same
// for every feature; the weights returned apply to the raw values. It
// suits a few strong, smooth features (retrieval scores) where trees, which
// cut each feature into steps, need more queries than there are.
//
// only, when not empty, names the features it may weigh (the others get
// 0): a few general features such as the sources' scores carry across
// time better than all of them fitted to one window.
func TrainLinear(ctx context.Context, d *Dataset, k, passes int, only []string) ([]float32, LinearReport, error) {
	var rep LinearReport
	nf, n := len(d.Features), d.Rows()
	if nf == 0 || n == 0 || len(d.X) != n*nf {
		return nil, rep, errors.New("train linear: empty or malformed dataset")
	}
	for _, name := range only {
		if !slices.Contains(d.Features, name) {
			return nil, rep, fmt.Errorf("train linear: feature %q is not in the dataset", name)
		}
	}
	std := make([]float64, nf)
	for f := range nf {
		var s, s2 float64
		for r := range n {
			x := float64(d.X[r*nf+f])
			s += x
			s2 += x * x
		}
		m := s / float64(n)
		std[f] = math.Sqrt(max(0, s2/float64(n)-m*m))
		if len(only) > 0 && !slices.Contains(only, d.Features[f]) {
			std[f] = 0 // not searched
		}
	}
	w := make([]float64, nf) // in standardised units
	scores := make([]float32, n)
	eval := func(w []float64) float64 {
		for r := range n {
			var s float64
			for f, wf := range w {
				if wf != 0 {
					s += wf * float64(d.X[r*nf+f]) / std[f]
				}
			}
			scores[r] = float32(s)
		}
		return WeightedNDCG(scores, d.Labels, d.Weights, d.Groups, k)
	}
	best := -1.0
	for f := range nf {
		if std[f] == 0 {
			continue
		}
		for _, sign := range []float64{1, -1} {
			if err := ctx.Err(); err != nil {
				return nil, rep, err
			}
			try := make([]float64, nf)
			try[f] = sign
			if v := eval(try); v > best {
				best, w = v, try
			}
		}
	}
	if best < 0 {
		return nil, rep, ErrConstantFeatures
	}
	rep.StartNDCG = best
	try := make([]float64, nf)
	for rep.Passes < passes {
		rep.Passes++
		moved := false
		for f := range nf {
			if std[f] == 0 {
				continue
			}
			scale := 0.0
			for _, x := range w {
				scale = max(scale, math.Abs(x))
			}
			for _, step := range linearSteps {
				if err := ctx.Err(); err != nil {
					return nil, rep, err
				}
				copy(try, w)
				try[f] += step * scale
				if v := eval(try); v > best+1e-9 {
					best = v
					copy(w, try)
					moved = true
				}
			}
		}
		if !moved {
			break
		}
	}
	rep.TrainNDCG = best
	out := make([]float32, nf)
	for f := range nf {
		if std[f] > 0 {
			out[f] = float32(w[f] / std[f])
		}
	}
	return out, rep, nil
}
