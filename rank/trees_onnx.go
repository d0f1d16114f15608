package rank

import (
	"errors"
	"fmt"
	"math"

	"github.com/recsys-dev/recsys/internal/onnxpb"
)

// KindTrees identifies models written by BuildTreeModel.
const KindTrees = "rank.trees.v1"

// BuildTreeModel writes e as an ONNX model with one TreeEnsembleRegressor
// node (domain ai.onnx.ml, opset 3): input "features" float [n, F], output
// "score" float [n, 1], and the feature names in its metadata so OpenScorer
// refuses it under a different feature list. Every split is BRANCH_LEQ with
// the Go threshold as float32, and leaf values are summed (SUM, no base
// value, no post transform), so ONNX Runtime computes what Ensemble.Score
// does. With e.Base, a Gemm scores the linear model and an Add sums the
// two (Gemm's order of summation may differ from Go's in the last bits).
func BuildTreeModel(e *Ensemble) ([]byte, error) {
	if e == nil {
		return nil, errors.New("build tree model: nil ensemble")
	}
	meta, err := ModelMetadata(KindTrees, e.Features)
	if err != nil {
		return nil, fmt.Errorf("build tree model: %w", err)
	}
	trees := e.Trees
	if len(trees) == 0 {
		// A model that always scores 0 keeps retrieval order; the operator
		// needs at least one node to be well formed.
		trees = []Tree{{Nodes: []TreeNode{{Feature: -1}}}}
	}
	var (
		treeIDs, nodeIDs, featIDs, trueIDs, falseIDs, missing []int64
		modes                                                 []string
		values                                                []float32
		tTree, tNode, tID                                     []int64
		tWeight                                               []float32
	)
	nf := int32(len(e.Features))
	for ti, t := range trees {
		if err := checkTree(t, nf); err != nil {
			return nil, fmt.Errorf("build tree model: tree %d: %w", ti, err)
		}
		for ni, n := range t.Nodes {
			treeIDs = append(treeIDs, int64(ti))
			nodeIDs = append(nodeIDs, int64(ni))
			missing = append(missing, 0)
			if n.Feature < 0 {
				modes = append(modes, "LEAF")
				featIDs = append(featIDs, 0)
				values = append(values, 0)
				trueIDs = append(trueIDs, 0)
				falseIDs = append(falseIDs, 0)
				tTree = append(tTree, int64(ti))
				tNode = append(tNode, int64(ni))
				tID = append(tID, 0)
				tWeight = append(tWeight, n.Value)
				continue
			}
			modes = append(modes, "BRANCH_LEQ")
			featIDs = append(featIDs, int64(n.Feature))
			values = append(values, n.Threshold)
			trueIDs = append(trueIDs, int64(n.Left))
			falseIDs = append(falseIDs, int64(n.Right))
		}
	}

	if b := e.Base; b != nil {
		if err := checkLinear(e.Features, b.Weights, b.Bias); err != nil {
			return nil, fmt.Errorf("build tree model: base model: %w", err)
		}
	}

	// Every tree is checked by now (no NaN, no cycle).
	if meta[MetaExplain], err = explainMeta(explainModel{Linear: e.Base, Trees: trees}); err != nil {
		return nil, fmt.Errorf("build tree model: %w", err)
	}
	g := onnxpb.NewGraph("tree_ranker")
	n := onnxpb.Dynamic("n")
	g.Input(ScoreInput, onnxpb.Float, n, onnxpb.Fixed(int64(nf)))
	g.Output(ScoreOutput, onnxpb.Float, n, onnxpb.Fixed(1))
	treesOut := ScoreOutput
	if e.Base != nil {
		treesOut = "trees"
	}
	g.DomainNode(onnxpb.MLDomain, "TreeEnsembleRegressor", []string{ScoreInput}, []string{treesOut},
		onnxpb.AttrInt("n_targets", 1),
		onnxpb.AttrString("aggregate_function", "SUM"),
		onnxpb.AttrString("post_transform", "NONE"),
		onnxpb.AttrInts("nodes_treeids", treeIDs),
		onnxpb.AttrInts("nodes_nodeids", nodeIDs),
		onnxpb.AttrInts("nodes_featureids", featIDs),
		onnxpb.AttrStrings("nodes_modes", modes),
		onnxpb.AttrFloats("nodes_values", values),
		onnxpb.AttrInts("nodes_truenodeids", trueIDs),
		onnxpb.AttrInts("nodes_falsenodeids", falseIDs),
		onnxpb.AttrInts("nodes_missing_value_tracks_true", missing),
		onnxpb.AttrInts("target_treeids", tTree),
		onnxpb.AttrInts("target_nodeids", tNode),
		onnxpb.AttrInts("target_ids", tID),
		onnxpb.AttrFloats("target_weights", tWeight),
	)
	if b := e.Base; b != nil {
		// score = Gemm(features, weights, bias) + trees: the base model as
		// BuildLinearModel writes it, then one Add.
		g.Initializer("base_weights", []int64{1, int64(nf)}, b.Weights)
		g.Initializer("base_bias", []int64{1}, []float32{b.Bias})
		g.Node("Gemm", []string{ScoreInput, "base_weights", "base_bias"}, []string{"base"}, onnxpb.AttrInt("transB", 1))
		g.Node("Add", []string{"base", treesOut}, []string{ScoreOutput})
	}
	b, err := (&onnxpb.Model{
		Opsets:          []onnxpb.Opset{{Version: onnxpb.DefaultOpset}, {Domain: onnxpb.MLDomain, Version: onnxpb.MLOpset}},
		ProducerName:    "recsys",
		ProducerVersion: KindTrees,
		Graph:           g,
		Metadata:        meta,
	}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("build tree model: %w", err)
	}
	return b, nil
}

// checkTree refuses what ONNX Runtime would reject less clearly or, worse,
// accept and mis-score: dangling children, cycles, unknown features and
// non-finite numbers.
func checkTree(t Tree, nf int32) error {
	if len(t.Nodes) == 0 {
		return errors.New("no nodes")
	}
	seen := make([]bool, len(t.Nodes))
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i < 0 || int(i) >= len(t.Nodes) {
			return fmt.Errorf("child %d out of range", i)
		}
		if seen[i] {
			return fmt.Errorf("node %d reached twice", i)
		}
		seen[i] = true
		n := t.Nodes[i]
		if n.Feature < 0 {
			if math.IsNaN(float64(n.Value)) || math.IsInf(float64(n.Value), 0) {
				return fmt.Errorf("leaf %d value %v", i, n.Value)
			}
			continue
		}
		if n.Feature >= nf {
			return fmt.Errorf("node %d splits on feature %d of %d", i, n.Feature, nf)
		}
		if math.IsNaN(float64(n.Threshold)) {
			return fmt.Errorf("node %d threshold is NaN", i)
		}
		stack = append(stack, n.Left, n.Right)
	}
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("node %d unreachable", i)
		}
	}
	return nil
}
