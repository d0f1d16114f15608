package embedtrain

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/recsys-dev/recsys/embed"
)

// normEpsilon matches the exported graph: it is added to the squared norm
// before the square root, so the Go forward pass and ONNX Runtime agree.
const normEpsilon = 1e-12

// Model holds the weights of the hashed embedding bag in the layout
// embed.BuildBagModel exports: Table is Buckets x BagDim and Proj is
// BagDim x Dim, both row-major.
type Model struct {
	cfg   embed.ModelConfig
	feat  *embed.Featurizer
	Table []float32
	Proj  []float32
}

// NewModel returns the untrained model of cfg: exactly the weights
// embed.BuildHashedModel would write.
func NewModel(cfg embed.ModelConfig) (*Model, error) {
	table, proj, err := embed.InitialParams(cfg)
	if err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	feat, err := embed.NewFeaturizer(cfg.Featurizer)
	if err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	return &Model{cfg: cfg, feat: feat, Table: table, Proj: proj}, nil
}

// Config returns the model's configuration.
func (m *Model) Config() embed.ModelConfig { return m.cfg }

// Export writes the model as ONNX with its featurizer in the metadata, the
// same graph the untrained model uses, so serving needs no new code.
func (m *Model) Export() ([]byte, error) {
	b, err := embed.BuildBagModel(m.cfg, m.Table, m.Proj)
	if err != nil {
		return nil, fmt.Errorf("export model: %w", err)
	}
	return b, nil
}

// sparse is a featurised text.
type sparse struct {
	ids []int64
	w   []float32
}

func (m *Model) featurize(text string) sparse {
	ids, w := m.feat.Featurize(text)
	return sparse{ids, w}
}

// activations are one text's forward values, kept for the backward pass.
type activations struct {
	bag  []float32 // BagDim
	z    []float32 // Dim, before normalisation
	e    []float32 // Dim, the embedding
	norm float64
}

func newActivations(cfg embed.ModelConfig) *activations {
	return &activations{bag: make([]float32, cfg.BagDim), z: make([]float32, cfg.Dim), e: make([]float32, cfg.Dim)}
}

// forward computes the embedding of f into a, accumulating in float64 so
// the result is as close as float32 storage allows to the exact value.
func (m *Model) forward(f sparse, a *activations, acc []float64) {
	bagDim, dim := m.cfg.BagDim, m.cfg.Dim
	acc = acc[:bagDim]
	clear(acc)
	for i, id := range f.ids {
		w := float64(f.w[i])
		row := m.Table[int(id)*bagDim : (int(id)+1)*bagDim]
		for j, x := range row {
			acc[j] += w * float64(x)
		}
	}
	for j := range a.bag {
		a.bag[j] = float32(acc[j])
	}
	zacc := make([]float64, dim)
	for j, b := range a.bag {
		if b == 0 {
			continue
		}
		row := m.Proj[j*dim : (j+1)*dim]
		for k, p := range row {
			zacc[k] += float64(b) * float64(p)
		}
	}
	var ss float64
	for k, z := range zacc {
		a.z[k] = float32(z)
		ss += z * z
	}
	a.norm = math.Sqrt(ss + normEpsilon)
	for k, z := range zacc {
		a.e[k] = float32(z / a.norm)
	}
}

// Embed returns the embedding of text: the Go twin of the exported graph.
func (m *Model) Embed(text string) []float32 {
	a := newActivations(m.cfg)
	m.forward(m.featurize(text), a, make([]float64, m.cfg.BagDim))
	return a.e
}

// EmbedAll embeds texts on all cores. It satisfies beir.Encoder, so a model
// can be evaluated while training without an ONNX round trip.
func (m *Model) EmbedAll(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	err := parallelChunks(ctx, len(texts), 64, runtime.GOMAXPROCS(0), func(lo, hi int) {
		a := newActivations(m.cfg)
		acc := make([]float64, m.cfg.BagDim)
		for i := lo; i < hi; i++ {
			m.forward(m.featurize(texts[i]), a, acc)
			out[i] = append([]float32(nil), a.e...)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("embed all: %w", err)
	}
	return out, nil
}

// EncodeAll is EmbedAll with the progress signature of beir.Encoder.
func (m *Model) EncodeAll(ctx context.Context, texts []string, progress func(done, total int)) ([][]float32, error) {
	out, err := m.EmbedAll(ctx, texts)
	if err == nil && progress != nil {
		progress(len(texts), len(texts))
	}
	return out, err
}

// parallelChunks calls fn over [0,n) in chunks of size chunk on workers
// goroutines. Chunk boundaries depend only on n and chunk, never on the
// worker count, which is what keeps training reproducible across machines.
func parallelChunks(ctx context.Context, n, chunk, workers int, fn func(lo, hi int)) error {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(workers, 1); w++ {
		wg.Go(func() {
			for lo := range next {
				fn(lo, min(lo+chunk, n))
			}
		})
	}
	var err error
feed:
	for lo := 0; lo < n; lo += chunk {
		select {
		case next <- lo:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	return err
}
