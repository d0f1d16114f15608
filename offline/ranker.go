package offline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/rank"
)

// rankerModel is the ranking model a build puts in the bundle.
type rankerModel struct {
	data []byte
	kind string
	from string // what progress reports: the promoted file, or the weights
}

// buildRanker picks the bundle's ranker: the model promoted to o.Ranker by
// `recsys train rank` when that file exists, else the linear model of the
// configured weights. A promoted model is opened with ONNX Runtime (already
// initialised for embedding) and refused, failing the build, when its
// features differ from the bundle's: serving it would be refused anyway,
// and failing here keeps the live bundle serving.
func buildRanker(o BuildOptions, features []string) (rankerModel, error) {
	if o.Ranker != "" {
		data, err := os.ReadFile(o.Ranker)
		switch {
		case err == nil:
			s, err := rank.OpenScorer(rank.ScorerConfig{ModelPath: o.Ranker, Sessions: 1}, features)
			if err != nil {
				return rankerModel{}, fmt.Errorf("build.ranker: %w", err)
			}
			s.Close()
			kind := "onnx"
			if pool, err := ort.OpenPool(o.Ranker, ort.PoolConfig{Sessions: 1}); err == nil {
				if k := pool.Metadata().Custom[rank.MetaModelKind]; k != "" {
					kind = k
				}
				pool.Close()
			}
			return rankerModel{data: data, kind: kind, from: o.Ranker}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return rankerModel{}, fmt.Errorf("build.ranker: %w", err)
		}
	}
	weights := make([]float32, len(features))
	for i, n := range features {
		weights[i] = o.Rank.Weights[n]
	}
	data, err := rank.BuildLinearModel(features, weights, o.Rank.Bias)
	if err != nil {
		return rankerModel{}, err
	}
	from := "rank.weights"
	if o.Ranker != "" {
		from += " (no promoted model at " + o.Ranker + " yet)"
	}
	return rankerModel{data: data, kind: "linear", from: from}, nil
}
