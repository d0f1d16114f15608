package rank

import (
	"context"
	"math"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// condExpect is the path-dependent conditional expectation of a tree given
// the features in mask: a known feature follows row, an unknown one both
// branches weighted by cover. It is the value function TreeSHAP's Shapley
// values are of.
func condExpect(t *Tree, j int32, row []float32, mask uint) float64 {
	n := &t.Nodes[j]
	if n.Feature < 0 {
		return float64(n.Value)
	}
	if mask&(1<<uint(n.Feature)) != 0 {
		if row[n.Feature] <= n.Threshold {
			return condExpect(t, n.Left, row, mask)
		}
		return condExpect(t, n.Right, row, mask)
	}
	return coverRatio(t, j, n.Left)*condExpect(t, n.Left, row, mask) + coverRatio(t, j, n.Right)*condExpect(t, n.Right, row, mask)
}

// bruteShapley enumerates every coalition.
func bruteShapley(e *Ensemble, row []float32, nf int) []float64 {
	fact := func(n int) float64 {
		f := 1.0
		for i := 2; i <= n; i++ {
			f *= float64(i)
		}
		return f
	}
	phi := make([]float64, nf)
	for i := range nf {
		for mask := uint(0); mask < 1<<uint(nf); mask++ {
			if mask&(1<<uint(i)) != 0 {
				continue
			}
			s := bits.OnesCount(mask)
			w := fact(s) * fact(nf-s-1) / fact(nf)
			for ti := range e.Trees {
				t := &e.Trees[ti]
				phi[i] += w * (condExpect(t, 0, row, mask|1<<uint(i)) - condExpect(t, 0, row, mask))
			}
		}
	}
	return phi
}

// randomTree grows a random tree of depth up to 5 over nf features, with
// consistent covers and features repeated along paths.
func randomTree(r *rand.Rand, nf int) Tree {
	t := Tree{Nodes: []TreeNode{{Feature: -1, Cover: float32(100 + r.IntN(900))}}}
	var grow func(j int32, depth int)
	grow = func(j int32, depth int) {
		cover := t.Nodes[j].Cover
		if depth == 5 || cover < 4 || r.Float64() < 0.2 {
			t.Nodes[j].Value = float32(r.NormFloat64())
			return
		}
		left := float32(1 + r.IntN(int(cover)-2))
		li, ri := int32(len(t.Nodes)), int32(len(t.Nodes)+1)
		t.Nodes[j] = TreeNode{Feature: int32(r.IntN(nf)), Threshold: float32(r.NormFloat64()), Left: li, Right: ri, Cover: cover}
		t.Nodes = append(t.Nodes, TreeNode{Feature: -1, Cover: left}, TreeNode{Feature: -1, Cover: cover - left})
		grow(li, depth+1)
		grow(ri, depth+1)
	}
	grow(0, 0)
	return t
}

// TestTreeSHAP_MatchesBruteForce checks the polynomial algorithm against
// the Shapley definition, and that the values sum to the score.
func TestTreeSHAP_MatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const nf = 5
	for trial := range 40 {
		e := &Ensemble{}
		for range 1 + r.IntN(4) {
			e.Trees = append(e.Trees, randomTree(r, nf))
		}
		x := newTreeExplainer(e, nf)
		row := make([]float32, nf)
		for i := range row {
			row[i] = float32(r.NormFloat64())
		}
		base, phi := x.Explain(row)
		want := bruteShapley(e, row, nf)
		sum := float64(base)
		for i := range phi {
			sum += float64(phi[i])
			if math.Abs(float64(phi[i])-want[i]) > 1e-5 {
				t.Fatalf("trial %d: phi[%d] = %v, brute force %v", trial, i, phi[i], want[i])
			}
		}
		if score := float64(e.Score(row)); math.Abs(sum-score) > 1e-4 {
			t.Fatalf("trial %d: base %v + contributions = %v, score %v", trial, base, sum, score)
		}
	}
}

// TestScorer_Explain: a trained ensemble exported to ONNX explains its
// ONNX scores (contributions sum to them within 1e-4) with covers from
// training; the linear model's contributions are weight times value.
func TestScorer_Explain(t *testing.T) {
	t.Run("trees", func(t *testing.T) { testExplain(t, trainedEnsemble(t), ExplainTreeSHAP) })
	t.Run("boosted from a linear model", func(t *testing.T) { testExplain(t, boostedEnsemble(t), ExplainLinearTreeSHAP) })

	lin := openLinear(t, []string{"a", "b"}, []float32{2, -0.5}, 0.25)
	method, base, phi, err := lin.Explain([]float32{3, 4})
	if err != nil || method != ExplainLinear || base != 0.25 || phi[0] != 6 || phi[1] != -2 {
		t.Fatalf("linear Explain = %q %v %v %v", method, base, phi, err)
	}
}

func testExplain(t *testing.T, ens *Ensemble, wantMethod string) {
	if ens.Trees[0].Nodes[0].Cover == 0 {
		t.Fatal("training kept no covers")
	}
	s, err := openTrees(t, ens, ens.Features)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nf := len(ens.Features)
	r := rand.New(rand.NewPCG(5, 6))
	rows := make([]float32, 50*nf)
	for i := range rows {
		rows[i] = float32(r.NormFloat64() * 2)
	}
	scores, err := s.Score(context.Background(), rows, 50)
	if err != nil {
		t.Fatal(err)
	}
	for i, score := range scores {
		method, base, phi, err := s.Explain(rows[i*nf : (i+1)*nf])
		if err != nil || method != wantMethod {
			t.Fatalf("Explain: %q, %v; want %q", method, err, wantMethod)
		}
		sum := float64(base)
		for _, v := range phi {
			sum += float64(v)
		}
		if math.Abs(sum-float64(score)) > 1e-4*max(1, math.Abs(float64(score))) {
			t.Fatalf("row %d: contributions sum to %v, ONNX scored %v", i, sum, score)
		}
	}
}

// TestCheckExplainer_RefusesAMismatch: a Go model that does not score as
// the graph does is refused, so it never explains another model's scores.
func TestCheckExplainer_RefusesAMismatch(t *testing.T) {
	ens := trainedEnsemble(t)
	s, err := openTrees(t, ens, ens.Features)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nf := len(ens.Features)
	other := &Ensemble{Trees: append([]Tree{{Nodes: []TreeNode{{Feature: -1, Value: 0.5}}}}, ens.Trees[1:]...)}
	x := newTreeExplainer(other, nf)
	rows := probeRows(newTreeExplainer(ens, nf), nf)
	scores, err := s.Score(context.Background(), rows, len(rows)/nf)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkExplainer(newTreeExplainer(ens, nf), rows, scores, nf); err != nil {
		t.Fatalf("the model's own trees refused: %v", err)
	}
	if err := checkExplainer(x, rows, scores, nf); err == nil || !strings.Contains(err.Error(), "ONNX graph") {
		t.Fatalf("checkExplainer = %v, want the probe mismatch", err)
	}
	if _, err := parseExplainer(`{}`, 1); err == nil || !strings.Contains(err.Error(), "want linear, trees or both") {
		t.Fatalf("a model of neither form: %v", err)
	}

	// A boosted model's trees without its linear base score otherwise.
	b := boostedEnsemble(t)
	bs, err := openTrees(t, b, b.Features)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	rows = probeRows(newTreeExplainer(b, nf), nf)
	if scores, err = bs.Score(context.Background(), rows, len(rows)/nf); err != nil {
		t.Fatal(err)
	}
	if err := checkExplainer(newTreeExplainer(b, nf), rows, scores, nf); err != nil {
		t.Fatalf("the boosted model's own form refused: %v", err)
	}
	if err := checkExplainer(newTreeExplainer(&Ensemble{Trees: b.Trees}, nf), rows, scores, nf); err == nil {
		t.Fatal("the trees without their base accepted")
	}
}
