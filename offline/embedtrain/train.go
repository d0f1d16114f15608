package embedtrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
)

// Pair is a positive training example: two texts that should embed close
// together (a query and the item it led to, a title and its description).
type Pair struct {
	A, B string
}

// Config sets the training run. Zero values take the documented defaults.
type Config struct {
	// Epochs is the number of passes over the pairs (default 3).
	Epochs int `yaml:"epochs"`
	// BatchSize is the pairs per step; every other pair of the batch is a
	// negative for each pair, so larger batches give a harder task
	// (default 128).
	BatchSize int `yaml:"batch_size"`
	// LearningRate is Adagrad's step size (default 0.05).
	LearningRate float64 `yaml:"learning_rate"`
	// Temperature divides the cosine similarities before the softmax
	// (default 0.05); lower values punish near-miss negatives harder.
	Temperature float64 `yaml:"temperature"`
	// Seed drives the shuffling; with the same seed, pairs and config a
	// run produces the same weights bit for bit, on any number of cores.
	Seed uint64 `yaml:"seed"`
	// Workers is the goroutines per step (default GOMAXPROCS).
	Workers int `yaml:"workers"`
}

// Defaults for Config.
const (
	DefaultEpochs       = 3
	DefaultBatchSize    = 128
	DefaultLearningRate = 0.05
	DefaultTemperature  = 0.05
)

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Epochs < 0 {
		errs = append(errs, errors.New("epochs: must be >= 0"))
	}
	if c.BatchSize < 0 || c.BatchSize == 1 {
		errs = append(errs, errors.New("batch_size: must be >= 2 (in-batch negatives need a second pair)"))
	}
	if c.LearningRate < 0 || math.IsNaN(c.LearningRate) || math.IsInf(c.LearningRate, 0) {
		errs = append(errs, errors.New("learning_rate: must be a finite number >= 0"))
	}
	if c.Temperature < 0 || math.IsNaN(c.Temperature) || math.IsInf(c.Temperature, 0) {
		errs = append(errs, errors.New("temperature: must be a finite number >= 0"))
	}
	if c.Workers < 0 {
		errs = append(errs, errors.New("workers: must be >= 0"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Epochs == 0 {
		c.Epochs = DefaultEpochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.LearningRate == 0 {
		c.LearningRate = DefaultLearningRate
	}
	if c.Temperature == 0 {
		c.Temperature = DefaultTemperature
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Epoch reports one finished pass.
type Epoch struct {
	Epoch int
	// Loss is the mean in-batch softmax loss over the epoch's steps.
	Loss  float64
	Steps int
}

// textChunk is the unit of parallel work in a step. Fixed, so the order of
// floating-point sums does not depend on the worker count.
const textChunk = 16

// Train fits m to pairs with a symmetric in-batch softmax (InfoNCE) loss:
// in a batch of B pairs, A_i must pick B_i among all B_j and B_j must pick
// A_j among all A_i, on cosine similarities divided by the temperature.
// Adagrad updates only the table rows a batch touches, which keeps steps
// cheap with a large hashed vocabulary. progress, when not nil, is called
// after each epoch.
func Train(ctx context.Context, m *Model, pairs []Pair, cfg Config, progress func(Epoch)) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("train config: %w", err)
	}
	cfg = cfg.withDefaults()
	if len(pairs) < 2 {
		return fmt.Errorf("train: %d pairs, need at least 2", len(pairs))
	}
	t := newTrainer(m, cfg)
	// Featurise each distinct text once: texts repeat across epochs, and
	// hashing dominates a step's cost otherwise.
	feats := make([][2]sparse, len(pairs))
	if err := parallelChunks(ctx, len(pairs), 64, cfg.Workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			feats[i] = [2]sparse{m.featurize(pairs[i].A), m.featurize(pairs[i].B)}
		}
	}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	order := make([]int, len(pairs))
	for i := range order {
		order[i] = i
	}
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(epoch)))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		steps := 0
		for lo := 0; lo+1 < len(order); lo += cfg.BatchSize {
			batch := order[lo:min(lo+cfg.BatchSize, len(order))]
			if len(batch) < 2 {
				break
			}
			l, err := t.step(ctx, feats, batch)
			if err != nil {
				return fmt.Errorf("train epoch %d: %w", epoch, err)
			}
			loss += l
			steps++
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("train epoch %d: loss diverged (%v); lower learning_rate", epoch, loss)
		}
		if progress != nil {
			progress(Epoch{Epoch: epoch, Loss: loss / float64(steps), Steps: steps})
		}
	}
	return nil
}

// trainer holds optimiser state and step buffers.
type trainer struct {
	m   *Model
	cfg Config
	// Adagrad's sums of squared gradients, one per weight.
	gTable, gProj []float32
	// gradTable accumulates a step's table gradient densely; touched lists
	// the rows to apply and clear, so a step costs what it touches.
	gradTable []float32
	touched   []bool
	gradProj  []float32
}

func newTrainer(m *Model, cfg Config) *trainer {
	return &trainer{
		m: m, cfg: cfg,
		gTable:    make([]float32, len(m.Table)),
		gProj:     make([]float32, len(m.Proj)),
		gradTable: make([]float32, len(m.Table)),
		touched:   make([]bool, m.cfg.Featurizer.Buckets),
		gradProj:  make([]float32, len(m.Proj)),
	}
}

// step runs one batch: forward, loss, backward, Adagrad. It returns the
// batch loss.
func (t *trainer) step(ctx context.Context, feats [][2]sparse, batch []int) (float64, error) {
	loss, err := t.gradients(ctx, feats, batch)
	if err != nil {
		return 0, err
	}
	return loss, t.apply(ctx, feats, batch)
}

// gradients runs the forward and backward passes of one batch, leaving
// the table gradient in gradTable (rows flagged in touched) and the
// projection gradient in gradProj. It returns the batch loss.
func (t *trainer) gradients(ctx context.Context, feats [][2]sparse, batch []int) (float64, error) {
	m, cfg := t.m, t.cfg
	bagDim, dim := m.cfg.BagDim, m.cfg.Dim
	b := len(batch)
	n := 2 * b // texts: A_0..A_{b-1}, B_0..B_{b-1}
	text := func(i int) sparse { return feats[batch[i%b]][i/b] }
	acts := make([]*activations, n)
	if err := parallelChunks(ctx, n, textChunk, cfg.Workers, func(lo, hi int) {
		acc := make([]float64, bagDim)
		for i := lo; i < hi; i++ {
			acts[i] = newActivations(m.cfg)
			m.forward(text(i), acts[i], acc)
		}
	}); err != nil {
		return 0, err
	}

	// Logits s_ij = <A_i, B_j> / T; dS is dLoss/ds.
	inv := 1 / cfg.Temperature
	s := make([]float64, b*b)
	for i := 0; i < b; i++ {
		for j := 0; j < b; j++ {
			s[i*b+j] = dot64(acts[i].e, acts[b+j].e) * inv
		}
	}
	dS := make([]float64, b*b)
	var loss float64
	// Row softmax (A picks B) and column softmax (B picks A), each averaged
	// over the batch and the two directions averaged.
	for dir := 0; dir < 2; dir++ {
		for i := 0; i < b; i++ {
			at := func(j int) int {
				if dir == 0 {
					return i*b + j
				}
				return j*b + i
			}
			mx := math.Inf(-1)
			for j := 0; j < b; j++ {
				mx = max(mx, s[at(j)])
			}
			var z float64
			for j := 0; j < b; j++ {
				z += math.Exp(s[at(j)] - mx)
			}
			loss += (math.Log(z) + mx - s[at(i)]) / float64(2*b)
			for j := 0; j < b; j++ {
				p := math.Exp(s[at(j)]-mx) / z
				if j == i {
					p--
				}
				dS[at(j)] += p / float64(2*b)
			}
		}
	}

	// Gradient with respect to each embedding, then back through the
	// normalisation, the projection and the bag. Each chunk keeps its own
	// projection gradient; they are summed in chunk order below.
	nChunks := (n + textChunk - 1) / textChunk
	dProj := make([][]float32, nChunks)
	dBag := make([][]float32, n)
	if err := parallelChunks(ctx, n, textChunk, cfg.Workers, func(lo, hi int) {
		dp := make([]float32, bagDim*dim)
		g := make([]float64, dim)
		for i := lo; i < hi; i++ {
			clear(g)
			for j := 0; j < b; j++ {
				var coef float64
				var other []float32
				if i < b {
					coef, other = dS[i*b+j], acts[b+j].e
				} else {
					coef, other = dS[j*b+(i-b)], acts[j].e
				}
				coef *= inv
				for k, x := range other {
					g[k] += coef * float64(x)
				}
			}
			a := acts[i]
			// e = z/norm: dz = (g - e <e,g>) / norm.
			eg := 0.0
			for k, x := range a.e {
				eg += float64(x) * g[k]
			}
			dz := make([]float32, dim)
			for k := range dz {
				dz[k] = float32((g[k] - float64(a.e[k])*eg) / a.norm)
			}
			db := make([]float32, bagDim)
			for r, bv := range a.bag {
				row := m.Proj[r*dim : (r+1)*dim]
				drow := dp[r*dim : (r+1)*dim]
				var sum float32
				for k, d := range dz {
					drow[k] += bv * d
					sum += row[k] * d
				}
				db[r] = sum
			}
			dBag[i] = db
		}
		dProj[lo/textChunk] = dp
	}); err != nil {
		return 0, err
	}

	// Table gradient: each worker owns the rows with id % workers == its
	// index and visits texts in order, so every row's sum has a fixed order
	// and no two goroutines write the same row.
	workers := cfg.Workers
	if err := parallelChunks(ctx, workers, 1, workers, func(part, _ int) {
		for i := 0; i < n; i++ {
			f := text(i)
			for fi, id := range f.ids {
				if int(id)%workers != part {
					continue
				}
				w := f.w[fi]
				grow := t.gradTable[int(id)*bagDim : (int(id)+1)*bagDim]
				for r, d := range dBag[i] {
					grow[r] += w * d
				}
				t.touched[id] = true
			}
		}
	}); err != nil {
		return 0, err
	}
	clear(t.gradProj)
	for _, dp := range dProj {
		for k, v := range dp {
			t.gradProj[k] += v
		}
	}
	return loss, nil
}

// apply takes one Adagrad step with the gradients of the last call to
// gradients over the same batch, and clears them.
func (t *trainer) apply(ctx context.Context, feats [][2]sparse, batch []int) error {
	bagDim, b, workers := t.m.cfg.BagDim, len(batch), t.cfg.Workers
	lr := float32(t.cfg.LearningRate)
	err := parallelChunks(ctx, workers, 1, workers, func(part, _ int) {
		for i := 0; i < 2*b; i++ {
			for _, id := range feats[batch[i%b]][i/b].ids {
				if int(id)%workers != part || !t.touched[id] {
					continue
				}
				t.touched[id] = false
				off := int(id) * bagDim
				adagrad(t.m.Table[off:off+bagDim], t.gTable[off:off+bagDim], t.gradTable[off:off+bagDim], lr)
				clear(t.gradTable[off : off+bagDim])
			}
		}
	})
	if err != nil {
		return err
	}
	adagrad(t.m.Proj, t.gProj, t.gradProj, lr)
	return nil
}

// adagradEps keeps the first steps of a rarely seen row bounded.
const adagradEps = 1e-8

func adagrad(w, g2, grad []float32, lr float32) {
	for i, g := range grad {
		if g == 0 {
			continue
		}
		g2[i] += g * g
		w[i] -= lr * g / (float32(math.Sqrt(float64(g2[i]))) + adagradEps)
	}
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
