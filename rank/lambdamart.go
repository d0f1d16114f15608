package rank

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// LambdaMARTConfig sets the boosting of a tree ranker. The zero value is not
// usable; start from DefaultLambdaMARTConfig.
type LambdaMARTConfig struct {
	// Trees is the most boosting rounds; early stopping usually ends sooner.
	Trees int `yaml:"trees"`
	// LearningRate (shrinkage) scales every tree's leaves.
	LearningRate float64 `yaml:"learning_rate"`
	// MaxDepth and MaxLeaves bound each tree. Trees grow best leaf first,
	// so MaxLeaves is the binding limit on wide data and MaxDepth on narrow.
	MaxDepth  int `yaml:"max_depth"`
	MaxLeaves int `yaml:"max_leaves"`
	// MinLeafRows is the fewest training rows a leaf may hold.
	MinLeafRows int `yaml:"min_leaf_rows"`
	// L2 regularises leaf values (the lambda of G/(H+lambda)).
	L2 float64 `yaml:"l2"`
	// Bins is the most histogram bins per feature (2..256).
	Bins int `yaml:"bins"`
	// NDCGAt is the truncation of the NDCG the lambdas optimise and the
	// validation metric.
	NDCGAt int `yaml:"ndcg_at"`
	// EarlyStopping ends training after this many rounds without a better
	// validation NDCG and keeps the best round's trees; 0 disables it.
	EarlyStopping int `yaml:"early_stopping"`
	// ValidFraction of the queries (chosen by Seed) is held out for early
	// stopping; 0 trains on every query for all Trees rounds.
	ValidFraction float64 `yaml:"valid_fraction"`
	Seed          uint64  `yaml:"seed"`
	// Workers computing histograms and lambdas; 0 means GOMAXPROCS.
	Workers int `yaml:"workers"`
}

// DefaultLambdaMARTConfig is a conservative start that trains in seconds on
// a few hundred thousand rows.
func DefaultLambdaMARTConfig() LambdaMARTConfig {
	return LambdaMARTConfig{
		Trees: 300, LearningRate: 0.1, MaxDepth: 6, MaxLeaves: 31, MinLeafRows: 20, L2: 1,
		Bins: 64, NDCGAt: 10, EarlyStopping: 30, ValidFraction: 0.2, Seed: 1,
	}
}

// Validate reports every invalid field.
func (c LambdaMARTConfig) Validate() error {
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.Trees > 0, "trees: must be > 0")
	check(c.LearningRate > 0 && c.LearningRate <= 1, "learning_rate: must be in (0, 1]")
	check(c.MaxDepth > 0 && c.MaxDepth <= 30, "max_depth: must be in 1..30")
	check(c.MaxLeaves >= 2, "max_leaves: must be >= 2")
	check(c.MinLeafRows >= 1, "min_leaf_rows: must be >= 1")
	check(c.L2 >= 0 && !math.IsInf(c.L2, 0), "l2: must be >= 0 and finite")
	check(c.Bins >= 2 && c.Bins <= 256, "bins: must be in 2..256")
	check(c.NDCGAt >= 1, "ndcg_at: must be >= 1")
	check(c.EarlyStopping >= 0, "early_stopping: must be >= 0")
	check(c.ValidFraction >= 0 && c.ValidFraction < 1, "valid_fraction: must be in [0, 1)")
	check(c.Workers >= 0, "workers: must be >= 0")
	return errors.Join(errs...)
}

// Dataset is a learning-to-rank data set: rows grouped by query, each group
// contiguous, with a graded relevance label per row.
type Dataset struct {
	Features []string
	X        []float32 // row-major, Rows() x len(Features)
	Labels   []float32
	Groups   []int // sizes of the consecutive query groups
	// Weights, when set (one per row), scale each row's gain. Training on
	// clicks sets them to inverse examination propensities, so an item
	// clicked low on the page counts for the attention it did not get.
	Weights []float32
}

// Rows is the number of rows.
func (d *Dataset) Rows() int { return len(d.Labels) }

// Validate checks that the shapes agree and every value is finite.
func (d *Dataset) Validate() error {
	if err := checkFeatureNames(d.Features); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	n, f := len(d.Labels), len(d.Features)
	if len(d.X) != n*f {
		return fmt.Errorf("dataset: %d values for %d rows of %d features", len(d.X), n, f)
	}
	total := 0
	for i, g := range d.Groups {
		if g <= 0 {
			return fmt.Errorf("dataset: group %d has size %d", i, g)
		}
		total += g
	}
	if total != n {
		return fmt.Errorf("dataset: groups cover %d rows, have %d", total, n)
	}
	for i, v := range d.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("dataset: row %d feature %s is %v", i/f, d.Features[i%f], v)
		}
	}
	for i, v := range d.Labels {
		if v < 0 || v > 30 || math.IsNaN(float64(v)) {
			return fmt.Errorf("dataset: row %d label %v: must be in 0..30", i, v)
		}
	}
	if d.Weights != nil && len(d.Weights) != n {
		return fmt.Errorf("dataset: %d weights for %d rows", len(d.Weights), n)
	}
	for i, w := range d.Weights {
		if !(w > 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("dataset: row %d weight %v: must be > 0 and finite", i, w)
		}
	}
	return nil
}

// Subset returns the listed query groups (by group index, in that order) as
// a new data set.
func (d *Dataset) Subset(groups []int) *Dataset {
	f := len(d.Features)
	starts := make([]int, len(d.Groups)+1)
	for i, g := range d.Groups {
		starts[i+1] = starts[i] + g
	}
	out := &Dataset{Features: d.Features}
	for _, q := range groups {
		s, e := starts[q], starts[q+1]
		out.X = append(out.X, d.X[s*f:e*f]...)
		out.Labels = append(out.Labels, d.Labels[s:e]...)
		if d.Weights != nil {
			out.Weights = append(out.Weights, d.Weights[s:e]...)
		}
		out.Groups = append(out.Groups, e-s)
	}
	return out
}

// Ensemble is a trained tree ranker: the score of a row is the sum of one
// leaf value per tree, plus Base's score when it is set. Every split sends
// x <= Threshold left, the BRANCH_LEQ rule of ONNX's TreeEnsembleRegressor,
// so the exported model scores as Score does.
type Ensemble struct {
	Features []string
	// Base is the linear model the trees correct, nil for none: boosting
	// starts from its scores (an initial score, as LightGBM's init_score),
	// so a model of a few trees is that ranker with a few corrections, not
	// a few coarse steps.
	Base  *Linear
	Trees []Tree
}

// Linear is a linear model: score = row · Weights + Bias.
type Linear struct {
	Weights []float32 `json:"weights"`
	Bias    float32   `json:"bias"`
}

// Score sums in float32, feature by feature.
func (l *Linear) Score(row []float32) float32 {
	s := l.Bias
	for i, w := range l.Weights {
		s += w * row[i]
	}
	return s
}

// Tree is one regression tree; Nodes[0] is the root.
type Tree struct {
	Nodes []TreeNode
}

// TreeNode is a split (Feature >= 0) or a leaf (Feature == -1, Value set).
type TreeNode struct {
	Feature     int32
	Threshold   float32
	Left, Right int32
	Value       float32
	// Cover is how many training rows reached the node; TreeSHAP weighs
	// a split's branches by it. 0 (a model from before covers were kept)
	// weighs them equally.
	Cover float32 `json:",omitempty"`
}

func (t *Tree) leaf(row []float32) int32 {
	i := int32(0)
	for {
		n := &t.Nodes[i]
		if n.Feature < 0 {
			return i
		}
		if row[n.Feature] <= n.Threshold {
			i = n.Left
		} else {
			i = n.Right
		}
	}
}

// Score is the model's score of one row (len(Features) values). It sums in
// float32, tree by tree, as ONNX Runtime does.
func (e *Ensemble) Score(row []float32) float32 {
	var s float32
	if e.Base != nil {
		s = e.Base.Score(row)
	}
	for i := range e.Trees {
		t := &e.Trees[i]
		s += t.Nodes[t.leaf(row)].Value
	}
	return s
}

// ScoreRows scores n rows of x (row-major).
func (e *Ensemble) ScoreRows(x []float32, n int) []float32 {
	f := len(e.Features)
	out := make([]float32, n)
	for r := range n {
		out[r] = e.Score(x[r*f : (r+1)*f])
	}
	return out
}

// TrainReport describes one training run.
type TrainReport struct {
	Rounds       int       // boosting rounds run
	Trees        int       // trees kept (the best validation round)
	TrainQueries int       // queries trained on
	ValidQueries int       // queries held out for early stopping
	TrainNDCG    float64   // of the kept model on the training queries
	ValidNDCG    float64   // of the kept model on the held-out queries; 0 without any
	History      []float64 // validation NDCG after each round
}

// TrainLambdaMART fits gradient-boosted regression trees to d with the
// LambdaMART objective: each round's gradients are the pairwise lambdas of
// RankNet weighted by the change in NDCG@cfg.NDCGAt that swapping the pair
// would make, and each tree is a Newton step on them. The same cfg.Seed on
// the same data gives the same model, whatever cfg.Workers is.
func TrainLambdaMART(ctx context.Context, cfg LambdaMARTConfig, d *Dataset) (*Ensemble, TrainReport, error) {
	return TrainLambdaMARTFrom(ctx, cfg, d, nil)
}

// TrainLambdaMARTFrom is TrainLambdaMART boosting from base's scores (nil:
// from 0); the ensemble carries base.
//
// Why start from a ranker: the logged rows are the items a ranker showed,
// and the model will reorder every retrieved candidate, most of them never
// shown. A model of a few trees learns coarse steps that order the shown
// items well (so the held-out NDCG cannot tell it from a finer one) and
// can put a poor candidate from deep in retrieval above every match; from
// base's scores, what the rows do not teach keeps base's order.
func TrainLambdaMARTFrom(ctx context.Context, cfg LambdaMARTConfig, d *Dataset, base *Linear) (*Ensemble, TrainReport, error) {
	var rep TrainReport
	if err := cfg.Validate(); err != nil {
		return nil, rep, fmt.Errorf("train lambdamart: %w", err)
	}
	if base != nil && len(base.Weights) != len(d.Features) {
		return nil, rep, fmt.Errorf("train lambdamart: base model has %d weights for %d features", len(base.Weights), len(d.Features))
	}
	if err := d.Validate(); err != nil {
		return nil, rep, fmt.Errorf("train lambdamart: %w", err)
	}
	if len(d.Groups) == 0 {
		return nil, rep, errors.New("train lambdamart: no queries")
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	train, valid := splitQueries(d, cfg.ValidFraction, cfg.Seed)
	rep.TrainQueries, rep.ValidQueries = len(train.Groups), 0
	if valid != nil {
		rep.ValidQueries = len(valid.Groups)
	}

	b := newBinned(train, cfg.Bins)
	lam := newLambdas(train, cfg.NDCGAt)
	grower := newGrower(cfg, b)
	ens := &Ensemble{Features: slices.Clone(d.Features)}
	if base != nil {
		ens.Base = &Linear{Weights: slices.Clone(base.Weights), Bias: base.Bias}
	}
	scores := ens.ScoreRows(train.X, train.Rows())
	var vscores []float32
	if valid != nil {
		vscores = ens.ScoreRows(valid.X, valid.Rows())
	}
	best, bestRound := math.Inf(-1), -1
	if base != nil && valid != nil {
		// Base alone is round -1: no tree is kept unless one beats it.
		best = WeightedNDCG(vscores, valid.Labels, valid.Weights, valid.Groups, cfg.NDCGAt)
	}
	f := len(d.Features)
	for round := 0; round < cfg.Trees; round++ {
		if err := ctx.Err(); err != nil {
			return nil, rep, fmt.Errorf("train lambdamart: round %d: %w", round, err)
		}
		lam.compute(scores, cfg.Workers)
		tree, rowLeaf := grower.grow(lam.grad, lam.hess)
		ens.Trees = append(ens.Trees, tree)
		for r, leaf := range rowLeaf {
			scores[r] += tree.Nodes[leaf].Value
		}
		rep.Rounds = round + 1
		if valid == nil {
			continue
		}
		for r := range vscores {
			vscores[r] += tree.Nodes[tree.leaf(valid.X[r*f:(r+1)*f])].Value
		}
		v := WeightedNDCG(vscores, valid.Labels, valid.Weights, valid.Groups, cfg.NDCGAt)
		rep.History = append(rep.History, v)
		if v > best {
			best, bestRound = v, round
		} else if cfg.EarlyStopping > 0 && round-bestRound >= cfg.EarlyStopping {
			break
		}
	}
	if valid != nil && (bestRound >= 0 || base != nil) {
		ens.Trees = ens.Trees[:bestRound+1]
		rep.ValidNDCG = best
	}
	rep.Trees = len(ens.Trees)
	rep.TrainNDCG = WeightedNDCG(ens.ScoreRows(train.X, train.Rows()), train.Labels, train.Weights, train.Groups, cfg.NDCGAt)
	return ens, rep, nil
}

// splitQueries holds out a seeded random fraction of d's queries; valid is
// nil when none are held out.
func splitQueries(d *Dataset, frac float64, seed uint64) (train, valid *Dataset) {
	nq := len(d.Groups)
	nv := int(math.Round(frac * float64(nq)))
	if nv == 0 || nv >= nq {
		return d, nil
	}
	perm := rand.New(rand.NewPCG(seed, 0x6c616d626461)).Perm(nq)
	v, t := slices.Clone(perm[:nv]), slices.Clone(perm[nv:])
	// Keep the original order within each side so the split is the only
	// thing the seed decides.
	slices.Sort(v)
	slices.Sort(t)
	return d.Subset(t), d.Subset(v)
}

// NDCG is the mean NDCG@k over the queries that have at least one row with
// a positive label (a query without one cannot be ranked better or worse).
// Gains are 2^label - 1; ties in score keep the rows' given order.
func NDCG(scores, labels []float32, groups []int, k int) float64 {
	return WeightedNDCG(scores, labels, nil, groups, k)
}

// WeightedNDCG is NDCG with each row's gain multiplied by its weight (nil
// weights are all 1). With inverse examination propensities as weights it
// estimates the NDCG a ranking would have had if every position were
// examined: each query counts in proportion to its weighted ideal DCG over
// its unweighted one (for a query with one click, that click's inverse
// propensity), so a click low on the page weighs more than one at the top.
// Normalising each query by its own weighted ideal alone would cancel the
// weight of every single-click query, leaving the metric biased towards
// the order that logged the clicks. Without weights it is the plain mean.
func WeightedNDCG(scores, labels, weights []float32, groups []int, k int) float64 {
	sum, wsum := 0.0, 0.0
	start := 0
	var idx []int
	var gs, raw []float64
	for _, g := range groups {
		w := weightsOf(weights, start, g)
		gs = rowGains(gs[:0], labels[start:start+g], w)
		ss := scores[start : start+g]
		raw = rowGains(raw[:0], labels[start:start+g], nil)
		start += g
		ideal := idealDCG(gs, k)
		if ideal == 0 {
			continue
		}
		norm := ideal
		if w != nil {
			norm = idealDCG(raw, k)
		}
		idx = rankOrder(idx[:0], ss)
		dcg := 0.0
		for p := 0; p < len(idx) && p < k; p++ {
			dcg += gs[idx[p]] * discount(p)
		}
		sum += dcg / norm
		wsum += ideal / norm
	}
	if wsum == 0 {
		return 0
	}
	return sum / wsum
}

func gain(label float32) float64 { return math.Exp2(float64(label)) - 1 }

func discount(pos int) float64 { return 1 / math.Log2(float64(pos)+2) }

func weightsOf(w []float32, start, n int) []float32 {
	if w == nil {
		return nil
	}
	return w[start : start+n]
}

// rowGains appends each row's gain, 2^label - 1 times its weight.
func rowGains(dst []float64, labels, weights []float32) []float64 {
	for i, l := range labels {
		g := gain(l)
		if weights != nil {
			g *= float64(weights[i])
		}
		dst = append(dst, g)
	}
	return dst
}

func idealDCG(gains []float64, k int) float64 {
	gs := slices.Clone(gains)
	slices.SortFunc(gs, func(a, b float64) int { return cmpDesc(a, b) })
	d := 0.0
	for p := 0; p < len(gs) && p < k; p++ {
		d += gs[p] * discount(p)
	}
	return d
}

func cmpDesc[T float32 | float64](a, b T) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// rankOrder returns the row indices ordered by descending score, ties in
// index order.
func rankOrder(dst []int, scores []float32) []int {
	for i := range scores {
		dst = append(dst, i)
	}
	slices.SortStableFunc(dst, func(a, b int) int { return cmpDesc(scores[a], scores[b]) })
	return dst
}

// lambdas holds the per-row gradients of one round and what they need.
type lambdas struct {
	gains  []float64 // per row, weighted
	starts []int
	// ideal DCG@k of each query from unweighted gains, so a query's
	// weights scale its gradients rather than cancel out; 0 skips it.
	ideal      []float64
	k          int
	grad, hess []float64
}

func newLambdas(d *Dataset, k int) *lambdas {
	l := &lambdas{gains: rowGains(nil, d.Labels, d.Weights), k: k, grad: make([]float64, d.Rows()), hess: make([]float64, d.Rows())}
	l.starts = make([]int, len(d.Groups)+1)
	l.ideal = make([]float64, len(d.Groups))
	raw := l.gains
	if d.Weights != nil {
		raw = rowGains(nil, d.Labels, nil)
	}
	for q, g := range d.Groups {
		l.starts[q+1] = l.starts[q] + g
		l.ideal[q] = idealDCG(raw[l.starts[q]:l.starts[q+1]], k)
	}
	return l
}

// compute fills grad (the ascent direction of NDCG) and hess from the
// current scores, queries split across workers. Each query writes only its
// own rows, so the result does not depend on the split.
func (l *lambdas) compute(scores []float32, workers int) {
	nq := len(l.ideal)
	var wg sync.WaitGroup
	chunk := (nq + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, nq)
		if lo >= hi {
			break
		}
		wg.Go(func() {
			var idx []int
			for q := lo; q < hi; q++ {
				idx = l.query(q, scores, idx)
			}
		})
	}
	wg.Wait()
}

func (l *lambdas) query(q int, scores []float32, idx []int) []int {
	s, e := l.starts[q], l.starts[q+1]
	grad, hess, gains, sc := l.grad[s:e], l.hess[s:e], l.gains[s:e], scores[s:e]
	clear(grad)
	clear(hess)
	if l.ideal[q] == 0 {
		return idx
	}
	idx = rankOrder(idx[:0], sc)
	m := len(idx)
	disc := func(p int) float64 {
		if p < l.k {
			return discount(p)
		}
		return 0
	}
	// Only pairs with one side in the top k change NDCG@k; a < b, so a
	// must be in the top k.
	for a := 0; a < m && a < l.k; a++ {
		ia := idx[a]
		for b := a + 1; b < m; b++ {
			ib := idx[b]
			if gains[ia] == gains[ib] {
				continue
			}
			hi, lo := ia, ib
			if gains[ib] > gains[ia] {
				hi, lo = ib, ia
			}
			delta := math.Abs(gains[ia]-gains[ib]) * (disc(a) - disc(b)) / l.ideal[q]
			rho := 1 / (1 + math.Exp(float64(sc[hi]-sc[lo])))
			gr, h := delta*rho, delta*rho*(1-rho)
			grad[hi] += gr
			grad[lo] -= gr
			hess[hi] += h
			hess[lo] += h
		}
	}
	return idx
}
