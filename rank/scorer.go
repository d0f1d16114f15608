package rank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/recsys-dev/recsys/internal/ort"
)

// ScorerConfig configures a Scorer.
type ScorerConfig struct {
	// ModelPath is the ONNX ranking model file.
	ModelPath string `yaml:"-"` // set by whoever opens a bundle, never from YAML
	// Sessions is how many requests may score at once (default 2).
	Sessions int `yaml:"sessions"`
	// IntraOpThreads is the threads per run (default 1): one request's
	// candidate matrix is small, so requests run side by side instead.
	IntraOpThreads int `yaml:"intra_op_threads"`
}

// defaultScorerSessions is used when ScorerConfig.Sessions is zero.
const defaultScorerSessions = 2

// Validate reports every invalid field.
func (c ScorerConfig) Validate() error {
	var errs []error
	if c.ModelPath == "" {
		errs = append(errs, errors.New("model_path: must be set"))
	}
	if c.Sessions < 0 {
		errs = append(errs, errors.New("sessions: must be >= 0"))
	}
	if c.IntraOpThreads < 0 {
		errs = append(errs, errors.New("intra_op_threads: must be >= 0"))
	}
	return errors.Join(errs...)
}

// Scorer scores candidate feature matrices with an ONNX ranking model. It
// is safe for concurrent use.
type Scorer struct {
	pool     *ort.Pool
	features []string
	// explainer is the model's Go form, checked against the graph at
	// open; explainErr says why there is none.
	explainer  Explainer
	explainErr error
}

// OpenScorer loads the model at cfg.ModelPath and checks that the feature
// names stored in it equal want, in order. ONNX Runtime must already be
// initialised with ort.Init. Any ONNX model with one float input
// [n, len(want)], a float output of n scores ([n] or [n,1]) and MetaFeatures
// metadata can serve.
func OpenScorer(cfg ScorerConfig, want []string) (*Scorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = defaultScorerSessions
	}
	pool, err := ort.OpenPool(cfg.ModelPath, ort.PoolConfig{
		Sessions:       cfg.Sessions,
		IntraOpThreads: cfg.IntraOpThreads,
	})
	if err != nil {
		return nil, fmt.Errorf("open scorer: %w", err)
	}
	s, err := newScorer(pool, want)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open scorer %s: %w", cfg.ModelPath, err)
	}
	s.explainer, s.explainErr = s.openExplainer()
	return s, nil
}

// openExplainer reads the model's Go form from its metadata and checks it
// scores probe rows as the ONNX graph does (and that its contributions sum
// to those scores). A model without one (written elsewhere) or whose
// metadata disagrees with its graph still serves; it only explains nothing.
func (s *Scorer) openExplainer() (Explainer, error) {
	raw, ok := s.pool.Metadata().Custom[MetaExplain]
	if !ok {
		return nil, fmt.Errorf("the model carries no %q metadata", MetaExplain)
	}
	nf := len(s.features)
	x, err := parseExplainer(raw, nf)
	if err != nil {
		return nil, err
	}
	rows := probeRows(x, nf)
	scores, err := s.Score(context.Background(), rows, len(rows)/nf)
	if err != nil {
		return nil, err
	}
	if err := checkExplainer(x, rows, scores, nf); err != nil {
		return nil, err
	}
	return x, nil
}

// probeRows are rows that take many paths through the model: all zeros,
// then each feature at one of the model's thresholds for it (a tree) or a
// small pattern of values (a linear model), a little below and above.
func probeRows(x Explainer, nf int) []float32 {
	const n = 16
	thresholds := make([][]float32, nf)
	if t, ok := x.(*treeExplainer); ok {
		for _, tree := range t.e.Trees {
			for _, node := range tree.Nodes {
				if node.Feature >= 0 {
					thresholds[node.Feature] = append(thresholds[node.Feature], node.Threshold)
				}
			}
		}
	}
	rows := make([]float32, n*nf)
	for r := 1; r < n; r++ {
		for f := range nf {
			v := float32((r*(f+3))%7) - 3
			if th := thresholds[f]; len(th) > 0 {
				v = th[(r*7+f)%len(th)]
				if r%2 == 0 {
					v -= 1e-3 * max(1, abs32(v))
				} else {
					v += 1e-3 * max(1, abs32(v))
				}
			}
			rows[r*nf+f] = v
		}
	}
	return rows
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// Explain splits the model's score of row into base + contributions, or
// says why it cannot.
func (s *Scorer) Explain(row []float32) (method string, base float32, phi []float32, err error) {
	if s.explainer == nil {
		return "", 0, nil, s.explainErr
	}
	base, phi = s.explainer.Explain(row)
	return s.explainer.Method(), base, phi, nil
}

func newScorer(pool *ort.Pool, want []string) (*Scorer, error) {
	if n := len(pool.Inputs()); n != 1 {
		return nil, fmt.Errorf("model has %d inputs, want 1 (the feature matrix)", n)
	}
	if len(pool.Outputs()) != 1 {
		// Tree ensembles may expose extra outputs; a ranker must be
		// unambiguous about which one is the score.
		return nil, fmt.Errorf("model has %d outputs, want 1 (the scores)", len(pool.Outputs()))
	}
	raw, ok := pool.Metadata().Custom[MetaFeatures]
	if !ok {
		return nil, fmt.Errorf("model has no %q metadata, so its feature order is unknown", MetaFeatures)
	}
	var have []string
	if err := json.Unmarshal([]byte(raw), &have); err != nil {
		return nil, fmt.Errorf("model metadata %q: %w", MetaFeatures, err)
	}
	if !slices.Equal(have, want) {
		return nil, fmt.Errorf("model features %v do not match configured features %v", have, want)
	}
	return &Scorer{pool: pool, features: have}, nil
}

// Features returns the model's feature names in column order.
func (s *Scorer) Features() []string { return slices.Clone(s.features) }

// Score scores n candidates whose features are the rows of x (row-major,
// n x len(Features())) in one model run, and returns one score per row.
func (s *Scorer) Score(ctx context.Context, x []float32, n int) ([]float32, error) {
	f := len(s.features)
	if n < 0 || len(x) != n*f {
		return nil, fmt.Errorf("score: %d values for %d candidates of %d features", len(x), n, f)
	}
	if n == 0 {
		return []float32{}, nil
	}
	in, err := onnx.NewTensor(onnx.NewShape(int64(n), int64(f)), x)
	if err != nil {
		return nil, fmt.Errorf("score: input tensor: %w", err)
	}
	defer in.Destroy()
	// The output is left for ONNX Runtime to allocate: rankers differ in
	// whether they return [n] or [n,1].
	outs := []onnx.Value{nil}
	if err := s.pool.Run(ctx, []onnx.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*onnx.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("score: model output is %T, want a float tensor", outs[0])
	}
	if got := t.GetShape().FlattenedSize(); got != int64(n) {
		return nil, fmt.Errorf("score: model returned shape %v for %d candidates", t.GetShape(), n)
	}
	return slices.Clone(t.GetData()), nil
}

// Close waits for in-flight scoring and frees the model's sessions.
func (s *Scorer) Close() error { return s.pool.Close() }
