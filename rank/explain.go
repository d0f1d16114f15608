package rank

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// MetaExplain is the metadata key under which a ranking model written here
// carries the Go form of itself (a linear model's weights, a tree
// ensemble's nodes with their covers), so the server can say how each
// feature moved a score. OpenScorer checks it scores as the ONNX graph does
// before using it.
const MetaExplain = "recsys.explain"

// Explanation methods.
const (
	ExplainTreeSHAP = "treeshap"
	ExplainLinear   = "linear"
	// ExplainLinearTreeSHAP is a tree ensemble boosted from a linear model:
	// weight times value for the linear part plus TreeSHAP for the trees.
	ExplainLinearTreeSHAP = "linear+treeshap"
)

// explainModel is the JSON under MetaExplain: a linear model, trees, or
// both (trees boosted from the linear model; the score is their sum).
type explainModel struct {
	Linear *Linear `json:"linear,omitempty"`
	Trees  []Tree  `json:"trees,omitempty"`
}

// Explainer splits a model's score into per-feature contributions.
type Explainer interface {
	// Method is ExplainTreeSHAP or ExplainLinear.
	Method() string
	// Explain returns base and phi with base + sum(phi) = the score of row.
	Explain(row []float32) (base float32, phi []float32)
	// Score is the model's score of row, computed in Go.
	Score(row []float32) float32
}

func explainMeta(e explainModel) (string, error) {
	b, err := json.Marshal(e)
	return string(b), err
}

func parseExplainer(raw string, nf int) (Explainer, error) {
	var m explainModel
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", MetaExplain, err)
	}
	if m.Linear == nil && m.Trees == nil {
		return nil, fmt.Errorf("metadata %q: want linear, trees or both", MetaExplain)
	}
	if m.Linear != nil && len(m.Linear.Weights) != nf {
		return nil, fmt.Errorf("metadata %q: %d weights for %d features", MetaExplain, len(m.Linear.Weights), nf)
	}
	for i, t := range m.Trees {
		if err := checkTree(t, int32(nf)); err != nil {
			return nil, fmt.Errorf("metadata %q: tree %d: %w", MetaExplain, i, err)
		}
	}
	if m.Trees == nil {
		return (*linearExplainer)(m.Linear), nil
	}
	return newTreeExplainer(&Ensemble{Base: m.Linear, Trees: m.Trees}, nf), nil
}

type linearExplainer Linear

func (l *linearExplainer) Method() string { return ExplainLinear }

func (l *linearExplainer) Score(row []float32) float32 { return (*Linear)(l).Score(row) }

// Explain is weight times value; the base is the bias (the score of an
// all-zero row).
func (l *linearExplainer) Explain(row []float32) (float32, []float32) {
	phi := make([]float32, len(l.Weights))
	for i, w := range l.Weights {
		phi[i] = w * row[i]
	}
	return l.Bias, phi
}

// treeExplainer computes path-dependent TreeSHAP (Lundberg, Erion and Lee,
// "Consistent individualized feature attribution for tree ensembles",
// 2018, Algorithm 2): the exact Shapley values of each tree, where a
// feature left out of a coalition follows both branches weighted by the
// training rows (covers) that took them. Polynomial in depth, so it is
// cheap enough per returned item.
type treeExplainer struct {
	e    *Ensemble
	nf   int
	base float64 // the expected score: each tree's cover-weighted mean leaf
}

func newTreeExplainer(e *Ensemble, nf int) *treeExplainer {
	x := &treeExplainer{e: e, nf: nf}
	for i := range e.Trees {
		x.base += expected(&e.Trees[i], 0)
	}
	return x
}

func (x *treeExplainer) Method() string {
	if x.e.Base != nil {
		return ExplainLinearTreeSHAP
	}
	return ExplainTreeSHAP
}

func (x *treeExplainer) Score(row []float32) float32 { return x.e.Score(row) }

// expected is the cover-weighted mean leaf value below node j.
func expected(t *Tree, j int32) float64 {
	n := &t.Nodes[j]
	if n.Feature < 0 {
		return float64(n.Value)
	}
	l, r := &t.Nodes[n.Left], &t.Nodes[n.Right]
	if n.Cover <= 0 {
		return (expected(t, n.Left) + expected(t, n.Right)) / 2
	}
	return (float64(l.Cover)*expected(t, n.Left) + float64(r.Cover)*expected(t, n.Right)) / float64(n.Cover)
}

// pathElem is one feature on the path from the root: the share of
// coalitions without it (z) and with it (o) that reach here, and the
// permutation weight w.
type pathElem struct {
	d    int32
	z, o float64
	w    float64
}

func (x *treeExplainer) Explain(row []float32) (float32, []float32) {
	phi := make([]float64, x.nf)
	for i := range x.e.Trees {
		t := &x.e.Trees[i]
		treeSHAP(t, row, phi, 0, nil, 1, 1, -1)
	}
	base := x.base
	if l := x.e.Base; l != nil {
		// The linear part, explained as a linear model alone is.
		lb, lphi := (*linearExplainer)(l).Explain(row)
		base += float64(lb)
		for i, v := range lphi {
			phi[i] += float64(v)
		}
	}
	out := make([]float32, x.nf)
	for i, v := range phi {
		out[i] = float32(v)
	}
	return float32(base), out
}

// coverRatio is the share of node j's training rows that reached child c
// (half each when the covers are unknown).
func coverRatio(t *Tree, j, c int32) float64 {
	if t.Nodes[j].Cover <= 0 {
		return 0.5
	}
	return float64(t.Nodes[c].Cover) / float64(t.Nodes[j].Cover)
}

func treeSHAP(t *Tree, row []float32, phi []float64, j int32, m []pathElem, pz, po float64, pi int32) {
	m = extend(m, pz, po, pi)
	n := &t.Nodes[j]
	if n.Feature < 0 {
		for i := 1; i < len(m); i++ {
			w := unwoundSum(m, i)
			phi[m[i].d] += w * (m[i].o - m[i].z) * float64(n.Value)
		}
		return
	}
	hot, cold := n.Right, n.Left
	if row[n.Feature] <= n.Threshold {
		hot, cold = n.Left, n.Right
	}
	iz, io := 1.0, 1.0
	for k := 1; k < len(m); k++ {
		if m[k].d == n.Feature {
			iz, io = m[k].z, m[k].o
			m = unwind(m, k)
			break
		}
	}
	treeSHAP(t, row, phi, hot, m, iz*coverRatio(t, j, hot), io, n.Feature)
	treeSHAP(t, row, phi, cold, m, iz*coverRatio(t, j, cold), 0, n.Feature)
}

// extend adds a feature to a copy of the path, updating the weights of
// every coalition size.
func extend(m []pathElem, pz, po float64, pi int32) []pathElem {
	l := len(m)
	out := make([]pathElem, l+1)
	copy(out, m)
	out[l] = pathElem{d: pi, z: pz, o: po}
	if l == 0 {
		out[l].w = 1
	}
	for i := l - 1; i >= 0; i-- {
		out[i+1].w += po * out[i].w * float64(i+1) / float64(l+1)
		out[i].w = pz * out[i].w * float64(l-i) / float64(l+1)
	}
	return out
}

// unwind is extend undone for path element i, on a copy.
func unwind(m []pathElem, i int) []pathElem {
	l := len(m) - 1
	out := make([]pathElem, l)
	copy(out, m[:l])
	n := m[l].w
	z, o := m[i].z, m[i].o
	for j := l - 1; j >= 0; j-- {
		if o != 0 {
			t := m[j].w
			out[j].w = n * float64(l+1) / (float64(j+1) * o)
			n = t - out[j].w*z*float64(l-j)/float64(l+1)
		} else {
			out[j].w = m[j].w * float64(l+1) / (z * float64(l-j))
		}
	}
	for j := i; j < l; j++ {
		out[j].d, out[j].z, out[j].o = m[j+1].d, m[j+1].z, m[j+1].o
	}
	return out
}

// unwoundSum is the total weight of the path with element i unwound.
func unwoundSum(m []pathElem, i int) float64 {
	l := len(m) - 1
	n := m[l].w
	z, o := m[i].z, m[i].o
	total := 0.0
	for j := l - 1; j >= 0; j-- {
		if o != 0 {
			w := n * float64(l+1) / (float64(j+1) * o)
			total += w
			n = m[j].w - w*z*float64(l-j)/float64(l+1)
		} else {
			total += m[j].w * float64(l+1) / (z * float64(l-j))
		}
	}
	return total
}

// checkExplainer compares the Go model with the ONNX scores of the same
// rows: a model whose metadata does not describe its graph explains
// nothing.
func checkExplainer(x Explainer, rows []float32, onnx []float32, nf int) error {
	if len(onnx)*nf != len(rows) {
		return errors.New("probe size mismatch")
	}
	for i, want := range onnx {
		row := rows[i*nf : (i+1)*nf]
		got := x.Score(row)
		if d := math.Abs(float64(got - want)); d > 1e-4*max(1, math.Abs(float64(want))) {
			return fmt.Errorf("probe row %d: the explained model scores %v, the ONNX graph %v", i, got, want)
		}
		base, phi := x.Explain(row)
		sum := float64(base)
		for _, v := range phi {
			sum += float64(v)
		}
		if d := math.Abs(sum - float64(want)); d > 1e-4*max(1, math.Abs(float64(want))) {
			return fmt.Errorf("probe row %d: contributions sum to %v, the score is %v", i, sum, want)
		}
	}
	return nil
}
