package rank

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// maxBinSample bounds the values per feature sorted to find bin edges:
// quantiles of a large seeded sample are as good as exact ones.
const maxBinSample = 200_000

// minHessian keeps a leaf from being fitted to rows whose lambdas carry
// almost no curvature (all their pairs already far apart).
const minHessian = 1e-6

// binned is the training matrix with each value replaced by its histogram
// bin, stored column by column so a histogram pass reads one feature's
// bytes contiguously.
type binned struct {
	rows  int
	cols  [][]uint8   // [feature][row]
	edges [][]float32 // [feature] ascending; bin b holds x <= edges[b]
}

func newBinned(d *Dataset, bins int) *binned {
	n, f := d.Rows(), len(d.Features)
	b := &binned{rows: n, cols: make([][]uint8, f), edges: make([][]float32, f)}
	sample := make([]int, 0, min(n, maxBinSample))
	if n <= maxBinSample {
		for r := range n {
			sample = append(sample, r)
		}
	} else {
		rng := rand.New(rand.NewPCG(uint64(n), uint64(f)))
		for range maxBinSample {
			sample = append(sample, rng.IntN(n))
		}
	}
	vals := make([]float32, len(sample))
	for j := range f {
		for i, r := range sample {
			vals[i] = d.X[r*f+j]
		}
		slices.Sort(vals)
		b.edges[j] = binEdges(vals, bins)
		col := make([]uint8, n)
		for r := range n {
			col[r] = uint8(binOf(b.edges[j], d.X[r*f+j]))
		}
		b.cols[j] = col
	}
	return b
}

// binEdges picks at most bins-1 split points from sorted values: every
// distinct value when there are few, quantiles otherwise. Edges are values
// that occur in the data, so a threshold never falls between a training
// value and its own bin.
func binEdges(sorted []float32, bins int) []float32 {
	uniq := slices.Compact(slices.Clone(sorted))
	if len(uniq) <= 1 {
		return nil
	}
	if len(uniq) <= bins {
		return uniq[:len(uniq)-1]
	}
	var edges []float32
	last := uniq[len(uniq)-1]
	for q := 1; q < bins; q++ {
		v := sorted[q*len(sorted)/bins]
		if v < last && (len(edges) == 0 || v > edges[len(edges)-1]) {
			edges = append(edges, v)
		}
	}
	return edges
}

// binOf is the first bin whose edge is >= x, or len(edges) past the last.
func binOf(edges []float32, x float32) int {
	lo, hi := 0, len(edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if edges[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

type binStat struct {
	g, h float64
	n    int
}

// leafState is a leaf of the tree being grown, with its histogram and the
// best split found for it.
type leafState struct {
	node  int32
	depth int
	rows  []int32
	hist  [][]binStat // [feature][bin]
	g, h  float64

	gain    float64 // of the best split; <= 0 means none
	feature int
	bin     int
}

type grower struct {
	cfg LambdaMARTConfig
	b   *binned
}

func newGrower(cfg LambdaMARTConfig, b *binned) *grower { return &grower{cfg: cfg, b: b} }

// grow fits one tree to the gradients, best leaf first, and returns it with
// the leaf each training row landed in. Leaf values include the shrinkage.
func (gr *grower) grow(grad, hess []float64) (Tree, []int32) {
	rows := make([]int32, gr.b.rows)
	for i := range rows {
		rows[i] = int32(i)
	}
	t := Tree{Nodes: []TreeNode{{Feature: -1, Cover: float32(len(rows))}}}
	root := &leafState{node: 0, rows: rows}
	root.hist = gr.histogram(rows, grad, hess)
	for _, r := range rows {
		root.g += grad[r]
		root.h += hess[r]
	}
	gr.bestSplit(root)
	leaves := []*leafState{root}
	for len(leaves) < gr.cfg.MaxLeaves {
		bi := -1
		for i, l := range leaves {
			if l.gain > 0 && l.depth < gr.cfg.MaxDepth && (bi < 0 || l.gain > leaves[bi].gain) {
				bi = i
			}
		}
		if bi < 0 {
			break
		}
		left, right := gr.split(&t, leaves[bi], grad, hess)
		leaves[bi] = left
		leaves = append(leaves, right)
	}
	rowLeaf := make([]int32, gr.b.rows)
	for _, l := range leaves {
		v := 0.0
		if l.h >= minHessian {
			v = gr.cfg.LearningRate * l.g / (l.h + gr.cfg.L2)
		}
		t.Nodes[l.node].Value = float32(v)
		for _, r := range l.rows {
			rowLeaf[r] = l.node
		}
	}
	return t, rowLeaf
}

// split turns leaf l into a split node with two new leaves. The smaller
// child's histogram is counted; the larger one's is the parent's minus it.
func (gr *grower) split(t *Tree, l *leafState, grad, hess []float64) (left, right *leafState) {
	col := gr.b.cols[l.feature]
	var lr, rr []int32
	for _, r := range l.rows {
		if int(col[r]) <= l.bin {
			lr = append(lr, r)
		} else {
			rr = append(rr, r)
		}
	}
	li, ri := int32(len(t.Nodes)), int32(len(t.Nodes)+1)
	t.Nodes[l.node] = TreeNode{Feature: int32(l.feature), Threshold: gr.b.edges[l.feature][l.bin], Left: li, Right: ri,
		Cover: t.Nodes[l.node].Cover}
	t.Nodes = append(t.Nodes, TreeNode{Feature: -1, Cover: float32(len(lr))}, TreeNode{Feature: -1, Cover: float32(len(rr))})
	left = &leafState{node: li, depth: l.depth + 1, rows: lr}
	right = &leafState{node: ri, depth: l.depth + 1, rows: rr}
	small, large := left, right
	if len(rr) < len(lr) {
		small, large = right, left
	}
	small.hist = gr.histogram(small.rows, grad, hess)
	large.hist = l.hist // reused in place: the parent is done with it
	for j := range large.hist {
		for k := range large.hist[j] {
			s := small.hist[j][k]
			large.hist[j][k].g -= s.g
			large.hist[j][k].h -= s.h
			large.hist[j][k].n -= s.n
		}
	}
	for _, c := range []*leafState{left, right} {
		for _, r := range c.rows {
			c.g += grad[r]
			c.h += hess[r]
		}
		gr.bestSplit(c)
	}
	return left, right
}

// histogram counts rows per feature bin, features spread over workers; a
// feature's histogram is written by one goroutine, so it is deterministic.
func (gr *grower) histogram(rows []int32, grad, hess []float64) [][]binStat {
	f := len(gr.b.cols)
	hist := make([][]binStat, f)
	work := func(j int) {
		h := make([]binStat, len(gr.b.edges[j])+1)
		col := gr.b.cols[j]
		for _, r := range rows {
			s := &h[col[r]]
			s.g += grad[r]
			s.h += hess[r]
			s.n++
		}
		hist[j] = h
	}
	workers := min(gr.cfg.Workers, f)
	// Spawning goroutines costs more than counting a small leaf.
	if workers <= 1 || len(rows)*f < 20_000 {
		for j := range f {
			work(j)
		}
		return hist
	}
	var wg sync.WaitGroup
	next := make(chan int, f)
	for j := range f {
		next <- j
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for j := range next {
				work(j)
			}
		})
	}
	wg.Wait()
	return hist
}

// bestSplit finds the split of l with the largest gain in the regularised
// second-order objective, respecting the minimum leaf size.
func (gr *grower) bestSplit(l *leafState) {
	l.gain = 0
	if l.depth >= gr.cfg.MaxDepth || len(l.rows) < 2*gr.cfg.MinLeafRows {
		return
	}
	lam := gr.cfg.L2
	parent := l.g * l.g / (l.h + lam)
	for j, h := range l.hist {
		var gl, hl float64
		nl := 0
		for k := 0; k < len(h)-1; k++ {
			gl += h[k].g
			hl += h[k].h
			nl += h[k].n
			nr := len(l.rows) - nl
			if nl < gr.cfg.MinLeafRows {
				continue
			}
			if nr < gr.cfg.MinLeafRows {
				break
			}
			grr, hr := l.g-gl, l.h-hl
			if hl < minHessian || hr < minHessian {
				continue
			}
			gain := gl*gl/(hl+lam) + grr*grr/(hr+lam) - parent
			// Strictly greater: ties go to the lower feature and bin, so
			// the tree never depends on map or goroutine order.
			if gain > l.gain+1e-12 && !math.IsNaN(gain) {
				l.gain, l.feature, l.bin = gain, j, k
			}
		}
	}
}
