package embed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/recsys-dev/recsys/internal/ort"
)

// EncoderConfig configures an Encoder. Zero values take the documented
// defaults.
type EncoderConfig struct {
	// ModelPath is the ONNX embedding model file.
	ModelPath string `yaml:"-"` // set by whoever opens a bundle, never from YAML
	// Sessions is how many batches may run at once (default 2). Online
	// queries use one session each; EncodeAll spreads over all of them.
	Sessions int `yaml:"sessions"`
	// IntraOpThreads is the threads per run (default 1); see
	// ort.PoolConfig.
	IntraOpThreads int `yaml:"intra_op_threads"`
	// BatchSize is the number of texts per run in EncodeAll (default 64).
	BatchSize int `yaml:"batch_size"`
}

// Defaults for EncoderConfig.
const (
	DefaultSessions  = 2
	DefaultBatchSize = 64
)

// Validate reports every invalid field.
func (c EncoderConfig) Validate() error {
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
	if c.BatchSize < 0 {
		errs = append(errs, errors.New("batch_size: must be >= 0"))
	}
	return errors.Join(errs...)
}

func (c EncoderConfig) withDefaults() EncoderConfig {
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Encoder embeds text with an ONNX embedding model. It is safe for
// concurrent use; Close frees it once in-flight calls finish.
type Encoder struct {
	pool      *ort.Pool
	feat      *Featurizer
	dim       int
	batchSize int
}

// Open loads the model at cfg.ModelPath. ONNX Runtime must already be
// initialised with ort.Init. The model must carry featurizer metadata (as
// BuildHashedModel and BuildBagModel write); a model without it is refused
// because its tokenisation would be guesswork.
func Open(cfg EncoderConfig, logger *slog.Logger) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("encoder config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool, err := ort.OpenPool(cfg.ModelPath, ort.PoolConfig{
		Sessions:       cfg.Sessions,
		IntraOpThreads: cfg.IntraOpThreads,
		Inputs:         []string{InputIDs, InputWeights},
		Outputs:        []string{OutputName},
	})
	if err != nil {
		return nil, fmt.Errorf("open encoder: %w", err)
	}
	info, err := parseModelInfo(pool.Metadata().Custom)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open encoder %s: %w", cfg.ModelPath, err)
	}
	feat, err := NewFeaturizer(info.featurizer)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open encoder %s: %w", cfg.ModelPath, err)
	}
	logger.Info("embedding model loaded", "path", cfg.ModelPath, "dim", info.dim,
		"buckets", info.featurizer.Buckets, "sessions", cfg.Sessions, "batch_size", cfg.BatchSize)
	return &Encoder{pool: pool, feat: feat, dim: info.dim, batchSize: cfg.BatchSize}, nil
}

// Dim returns the embedding width.
func (e *Encoder) Dim() int { return e.dim }

// Featurizer returns the featurizer the model was built with.
func (e *Encoder) Featurizer() *Featurizer { return e.feat }

// Close waits for in-flight calls and frees the model's sessions.
func (e *Encoder) Close() error { return e.pool.Close() }

// Encode embeds texts in one run on one session: the online path, where a
// request holds a few texts and latency matters more than throughput.
// Vectors have unit length, or are zero for texts without letters or digits.
func (e *Encoder) Encode(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	out := make([][]float32, len(texts))
	b := batchPool.Get().(*batch)
	defer batchPool.Put(b)
	if err := e.run(ctx, b, texts, out); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return out, nil
}

// EncodeAll embeds many texts for offline use: batches of BatchSize run
// in parallel on every session. Texts are grouped by length first so each
// batch pads to a similar width. progress, when not nil, is called after
// each batch with the number of texts done; calls are serialised.
func (e *Encoder) EncodeAll(ctx context.Context, texts []string, progress func(done, total int)) ([][]float32, error) {
	out, err := encodeAll(ctx, texts, e.pool.Size(), e.batchSize, func() (runFunc, func()) {
		b := batchPool.Get().(*batch)
		run := func(ctx context.Context, texts []string, out [][]float32) error { return e.run(ctx, b, texts, out) }
		return run, func() { batchPool.Put(b) }
	}, progress)
	if err != nil {
		return nil, fmt.Errorf("encode all: %w", err)
	}
	return out, nil
}

// batch is reusable input memory for one run.
type batch struct {
	ids     []int64
	weights []float32
	rowIDs  []int64
	rowW    []float32
}

var batchPool = sync.Pool{New: func() any { return new(batch) }}

// run featurises texts into a padded [n, width] matrix, runs the model and
// stores one vector per text in out.
func (e *Encoder) run(ctx context.Context, b *batch, texts []string, out [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(texts)
	// Featurise each text once into a flat buffer, remembering offsets, then
	// lay the rows out at the batch's width.
	b.rowIDs, b.rowW = b.rowIDs[:0], b.rowW[:0]
	offsets := make([]int, n+1)
	width := 1 // at least one (padding) column keeps shapes non-empty
	for i, t := range texts {
		b.rowIDs, b.rowW = e.feat.AppendFeatures(b.rowIDs, b.rowW, t)
		offsets[i+1] = len(b.rowIDs)
		width = max(width, offsets[i+1]-offsets[i])
	}
	size := n * width
	b.ids = slices.Grow(b.ids[:0], size)[:size]
	b.weights = slices.Grow(b.weights[:0], size)[:size]
	clear(b.ids)
	clear(b.weights)
	for i := 0; i < n; i++ {
		copy(b.ids[i*width:], b.rowIDs[offsets[i]:offsets[i+1]])
		copy(b.weights[i*width:], b.rowW[offsets[i]:offsets[i+1]])
	}

	shape := onnx.NewShape(int64(n), int64(width))
	idsT, err := onnx.NewTensor(shape, b.ids)
	if err != nil {
		return fmt.Errorf("ids tensor: %w", err)
	}
	defer idsT.Destroy()
	wT, err := onnx.NewTensor(shape, b.weights)
	if err != nil {
		return fmt.Errorf("weights tensor: %w", err)
	}
	defer wT.Destroy()
	// The output tensor is backed by Go memory that becomes the result, so
	// the vectors are not copied again.
	res := make([]float32, n*e.dim)
	outT, err := onnx.NewTensor(onnx.NewShape(int64(n), int64(e.dim)), res)
	if err != nil {
		return fmt.Errorf("output tensor: %w", err)
	}
	defer outT.Destroy()
	if err := e.pool.Run(ctx, []onnx.Value{idsT, wT}, []onnx.Value{outT}); err != nil {
		return err
	}
	for i := range out {
		out[i] = res[i*e.dim : (i+1)*e.dim : (i+1)*e.dim]
	}
	return nil
}
