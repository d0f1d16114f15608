package embed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/recsys-dev/recsys/internal/ort"
)

// Input and output names of BERT-family ONNX exports (Hugging Face
// optimum, sentence-transformers). token_type_ids is optional: some
// exports (DistilBERT-style) drop it.
const (
	BERTInputIDs      = "input_ids"
	BERTAttentionMask = "attention_mask"
	BERTTokenTypeIDs  = "token_type_ids"
	BERTOutput        = "last_hidden_state"
)

// BERTConfig configures a BERT-family sentence encoder loaded from files a
// user supplies. Zero values take the documented defaults.
type BERTConfig struct {
	// ModelPath is the ONNX model (e.g. all-MiniLM-L6-v2's model.onnx).
	ModelPath string `yaml:"model_path"`
	// VocabPath is the WordPiece vocabulary (vocab.txt) the model was
	// trained with.
	VocabPath string `yaml:"vocab_path"`
	// MaxLen caps ids per text, [CLS] and [SEP] included (default 256,
	// what all-MiniLM-L6-v2 was trained with). Batches pad only to their
	// longest member, so short texts do not pay for it.
	MaxLen int `yaml:"max_len"`
	// Sessions, IntraOpThreads and BatchSize mean what they mean in
	// EncoderConfig.
	Sessions       int `yaml:"sessions"`
	IntraOpThreads int `yaml:"intra_op_threads"`
	BatchSize      int `yaml:"batch_size"`
	// Tokenizer defaults to DefaultWordPieceConfig (uncased BERT) when
	// left zero.
	Tokenizer WordPieceConfig `yaml:"tokenizer"`
}

// DefaultBERTMaxLen is the default BERTConfig.MaxLen.
const DefaultBERTMaxLen = 256

// Validate reports every invalid field.
func (c BERTConfig) Validate() error {
	var errs []error
	if c.ModelPath == "" {
		errs = append(errs, errors.New("model_path: must be set"))
	}
	if c.VocabPath == "" {
		errs = append(errs, errors.New("vocab_path: must be set"))
	}
	if c.MaxLen != 0 && c.MaxLen < 2 {
		errs = append(errs, errors.New("max_len: must be >= 2 ([CLS] and [SEP])"))
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
	if c.Tokenizer != (WordPieceConfig{}) {
		if err := c.Tokenizer.Validate(); err != nil {
			errs = append(errs, prefixErrors("tokenizer.", err))
		}
	}
	return errors.Join(errs...)
}

func (c BERTConfig) withDefaults() BERTConfig {
	if c.MaxLen == 0 {
		c.MaxLen = DefaultBERTMaxLen
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Tokenizer == (WordPieceConfig{}) {
		c.Tokenizer = DefaultWordPieceConfig()
	}
	return c
}

// BERT embeds text with a BERT-family encoder: WordPiece ids in, the last
// hidden state out, then the mean over real (unmasked) tokens and L2
// normalisation, as sentence-transformers does. It is safe for concurrent
// use; Close frees it once in-flight calls finish.
type BERT struct {
	pool      *ort.Pool
	tok       *WordPiece
	dim       int
	maxLen    int
	batchSize int
	typeIDs   bool
}

// OpenBERT loads the model and vocabulary named in cfg. ONNX Runtime must
// already be initialised. The model must take input_ids and
// attention_mask (and optionally token_type_ids) as int64 [batch, seq] and
// return last_hidden_state as float [batch, seq, hidden] with a fixed
// hidden size.
func OpenBERT(ctx context.Context, cfg BERTConfig, logger *slog.Logger) (*BERT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bert config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tok, err := OpenWordPiece(ctx, cfg.VocabPath, cfg.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("open bert: %w", err)
	}
	data, err := os.ReadFile(cfg.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("open bert: %w", err)
	}
	if !ort.Initialized() {
		return nil, fmt.Errorf("open bert: %w", ort.ErrNotInitialized)
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("open bert %s: read model: %w", cfg.ModelPath, err)
	}
	inputs, dim, err := checkBERTSignature(ins, outs)
	if err != nil {
		return nil, fmt.Errorf("open bert %s: %w", cfg.ModelPath, err)
	}
	pool, err := ort.NewPool(data, ort.PoolConfig{
		Sessions:       cfg.Sessions,
		IntraOpThreads: cfg.IntraOpThreads,
		Inputs:         inputs,
		Outputs:        []string{BERTOutput},
	})
	if err != nil {
		return nil, fmt.Errorf("open bert %s: %w", cfg.ModelPath, err)
	}
	logger.Info("bert encoder loaded", "path", cfg.ModelPath, "vocab", tok.VocabSize(), "dim", dim,
		"max_len", cfg.MaxLen, "sessions", cfg.Sessions, "batch_size", cfg.BatchSize)
	return &BERT{pool: pool, tok: tok, dim: dim, maxLen: cfg.MaxLen, batchSize: cfg.BatchSize,
		typeIDs: len(inputs) == 3}, nil
}

// checkBERTSignature returns the inputs to feed, in order, and the hidden
// size, or says what about the model does not fit.
func checkBERTSignature(ins, outs []onnx.InputOutputInfo) ([]string, int, error) {
	have := make(map[string]onnx.InputOutputInfo, len(ins))
	for _, in := range ins {
		have[in.Name] = in
	}
	inputs := []string{BERTInputIDs, BERTAttentionMask}
	if _, ok := have[BERTTokenTypeIDs]; ok {
		inputs = append(inputs, BERTTokenTypeIDs)
	}
	for _, name := range inputs {
		in, ok := have[name]
		if !ok {
			return nil, 0, fmt.Errorf("model has no input %q", name)
		}
		if in.DataType != onnx.TensorElementDataTypeInt64 || len(in.Dimensions) != 2 {
			return nil, 0, fmt.Errorf("input %q: want int64 [batch, seq], got %v %v", name, in.DataType, in.Dimensions)
		}
	}
	if len(ins) != len(inputs) {
		return nil, 0, fmt.Errorf("model has %d inputs, want %v", len(ins), inputs)
	}
	for _, out := range outs {
		if out.Name != BERTOutput {
			continue
		}
		if out.DataType != onnx.TensorElementDataTypeFloat || len(out.Dimensions) != 3 || out.Dimensions[2] <= 0 {
			return nil, 0, fmt.Errorf("output %q: want float [batch, seq, hidden] with a fixed hidden size, got %v %v",
				BERTOutput, out.DataType, out.Dimensions)
		}
		return inputs, int(out.Dimensions[2]), nil
	}
	return nil, 0, fmt.Errorf("model has no output %q", BERTOutput)
}

// Dim returns the embedding width (the model's hidden size).
func (b *BERT) Dim() int { return b.dim }

// Tokenizer returns the WordPiece tokeniser the encoder uses.
func (b *BERT) Tokenizer() *WordPiece { return b.tok }

// Close waits for in-flight calls and frees the model's sessions.
func (b *BERT) Close() error { return b.pool.Close() }

// Encode embeds texts in one run on one session.
func (b *BERT) Encode(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	out := make([][]float32, len(texts))
	if err := b.run(ctx, texts, out); err != nil {
		return nil, fmt.Errorf("bert encode: %w", err)
	}
	return out, nil
}

// EncodeAll embeds many texts in parallel batches over every session,
// grouping texts of similar token count so each batch pads little.
// progress, when not nil, is called after each batch; calls are serialised.
func (b *BERT) EncodeAll(ctx context.Context, texts []string, progress func(done, total int)) ([][]float32, error) {
	out, err := encodeAll(ctx, texts, b.pool.Size(), b.batchSize, func() (runFunc, func()) { return b.run, func() {} }, progress)
	if err != nil {
		return nil, fmt.Errorf("bert encode all: %w", err)
	}
	return out, nil
}

// run tokenises texts, pads them to the batch's longest sequence, runs the
// model and pools one vector per text into out.
func (b *BERT) run(ctx context.Context, texts []string, out [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(texts)
	seqs := make([][]int32, n)
	seq := 2
	for i, t := range texts {
		seqs[i] = b.tok.Encode(t, b.maxLen)
		seq = max(seq, len(seqs[i]))
	}
	ids := make([]int64, n*seq)
	mask := make([]int64, n*seq)
	pad := int64(b.tok.PadID())
	for i, s := range seqs {
		row := ids[i*seq : (i+1)*seq]
		for j := range row {
			if j < len(s) {
				row[j] = int64(s[j])
				mask[i*seq+j] = 1
			} else {
				row[j] = pad
			}
		}
	}
	shape := onnx.NewShape(int64(n), int64(seq))
	var values []onnx.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	for _, data := range [][]int64{ids, mask} {
		v, err := onnx.NewTensor(shape, data)
		if err != nil {
			return fmt.Errorf("input tensor: %w", err)
		}
		values = append(values, v)
	}
	if b.typeIDs {
		// One segment per text: every token type is 0.
		v, err := onnx.NewTensor(shape, make([]int64, n*seq))
		if err != nil {
			return fmt.Errorf("input tensor: %w", err)
		}
		values = append(values, v)
	}
	hidden := make([]float32, n*seq*b.dim)
	outT, err := onnx.NewTensor(onnx.NewShape(int64(n), int64(seq), int64(b.dim)), hidden)
	if err != nil {
		return fmt.Errorf("output tensor: %w", err)
	}
	defer outT.Destroy()
	if err := b.pool.Run(ctx, values, []onnx.Value{outT}); err != nil {
		return err
	}
	vecs := make([]float32, n*b.dim)
	for i, s := range seqs {
		v := vecs[i*b.dim : (i+1)*b.dim : (i+1)*b.dim]
		meanPoolNormalize(v, hidden[i*seq*b.dim:], len(s), b.dim)
		out[i] = v
	}
	return nil
}

// meanPoolNormalize writes the L2-normalised mean of the first tokens rows
// of hidden (row width dim) into dst. Only real tokens are averaged, which
// is what makes a text's vector independent of the batch it was padded in.
// Sums run in float64 so long sequences do not lose precision.
func meanPoolNormalize(dst, hidden []float32, tokens, dim int) {
	acc := make([]float64, dim)
	for t := 0; t < tokens; t++ {
		row := hidden[t*dim : (t+1)*dim]
		for j, x := range row {
			acc[j] += float64(x)
		}
	}
	var ss float64
	for j := range acc {
		acc[j] /= float64(max(tokens, 1))
		ss += acc[j] * acc[j]
	}
	// sentence-transformers divides by max(norm, 1e-12): a zero vector
	// stays zero rather than becoming NaN.
	norm := max(math.Sqrt(ss), 1e-12)
	for j := range acc {
		dst[j] = float32(acc[j] / norm)
	}
}
