package embed

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/recsys-dev/recsys/internal/onnxpb"
)

// Metadata keys an embedding model carries. The Encoder reads them to
// featurise text the way the model expects.
const (
	MetaKind       = "recsys.model.kind"
	MetaFeaturizer = "recsys.embed.featurizer"
	MetaDim        = "recsys.embed.dim"
	MetaBagDim     = "recsys.embed.bag_dim"

	// KindHashedBag identifies the hashed embedding-bag graph.
	KindHashedBag = "embed.hashed_bag.v1"
)

// Names of the model's inputs and output.
const (
	InputIDs     = "ids"
	InputWeights = "weights"
	OutputName   = "embedding"
)

// normEpsilon is added to the squared norm before the square root: a text
// without features then yields a zero vector instead of NaN, and real
// vectors (squared norms far above 1e-12) are unaffected.
const normEpsilon = 1e-12

// ModelConfig shapes a hashed embedding-bag model.
type ModelConfig struct {
	Featurizer FeaturizerConfig `json:"featurizer" yaml:"featurizer"`
	// BagDim is the width of the embedding table rows.
	BagDim int `json:"bag_dim" yaml:"bag_dim"`
	// Dim is the width of the output embedding.
	Dim int `json:"dim" yaml:"dim"`
	// Seed drives the random initial table and projection.
	Seed uint64 `json:"seed" yaml:"seed"`
}

// maxTableValues bounds Buckets*BagDim: 2^26 floats is a 256 MB model,
// well past anything this model family needs.
const maxTableValues = 1 << 26

// DefaultModelConfig returns the configuration of the default model:
// 65536x128 table and 128-dimensional output, about 32 MB on disk.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{
		Featurizer: DefaultFeaturizerConfig(),
		BagDim:     128,
		Dim:        128,
		Seed:       1,
	}
}

// Validate reports every invalid field.
func (c ModelConfig) Validate() error {
	var errs []error
	if err := c.Featurizer.Validate(); err != nil {
		errs = append(errs, prefixErrors("featurizer.", err))
	}
	if c.BagDim <= 0 {
		errs = append(errs, errors.New("bag_dim: must be > 0"))
	}
	if c.Dim <= 0 {
		errs = append(errs, errors.New("dim: must be > 0"))
	}
	if c.BagDim > 0 && c.Featurizer.Buckets > 0 && c.Featurizer.Buckets*c.BagDim > maxTableValues {
		errs = append(errs, errors.New("bag_dim: buckets*bag_dim must be <= 67108864"))
	}
	return errors.Join(errs...)
}

// prefixErrors prefixes each joined error's message with a key path.
func prefixErrors(prefix string, err error) error {
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			parts = append(parts, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(parts...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// BuildHashedModel returns the untrained embedding model: a seeded random
// embedding table and a fixed random projection. Random features already
// place texts that share words and n-grams near each other, which makes it
// a usable first model; training later replaces the weights, not the graph.
func BuildHashedModel(cfg ModelConfig) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("build hashed model: %w", err)
	}
	table, proj := randomParams(cfg)
	return BuildBagModel(cfg, table, proj)
}

// BuildBagModel writes the embedding-bag graph with the given weights:
// table is Buckets x BagDim (row 0 is padding and should be zero) and proj
// is BagDim x Dim, both row-major. The trainer uses it to export learned
// weights in the same shape the Encoder serves.
func BuildBagModel(cfg ModelConfig, table, proj []float32) ([]byte, error) {
	m, err := bagModel(cfg, table, proj)
	if err != nil {
		return nil, fmt.Errorf("build bag model: %w", err)
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("build bag model: %w", err)
	}
	return b, nil
}

func bagModel(cfg ModelConfig, table, proj []float32) (*onnxpb.Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	buckets, bag, dim := int64(cfg.Featurizer.Buckets), int64(cfg.BagDim), int64(cfg.Dim)
	if int64(len(table)) != buckets*bag {
		return nil, fmt.Errorf("table has %d values, want %d (buckets*bag_dim)", len(table), buckets*bag)
	}
	if int64(len(proj)) != bag*dim {
		return nil, fmt.Errorf("projection has %d values, want %d (bag_dim*dim)", len(proj), bag*dim)
	}
	fc, err := json.Marshal(cfg.Featurizer)
	if err != nil {
		return nil, err
	}

	g := onnxpb.NewGraph("hashed_embedding_bag")
	batch, length := onnxpb.Dynamic("batch"), onnxpb.Dynamic("len")
	g.Input(InputIDs, onnxpb.Int64, batch, length)
	g.Input(InputWeights, onnxpb.Float, batch, length)
	g.Output(OutputName, onnxpb.Float, batch, onnxpb.Fixed(dim))

	g.Initializer("table", []int64{buckets, bag}, table)
	g.Initializer("projection", []int64{bag, dim}, proj)
	g.InitializerInt64("axis1", []int64{1}, []int64{1})
	g.Initializer("epsilon", []int64{}, []float32{normEpsilon})

	// [batch,len] ids -> [batch,len,bag] rows.
	g.Node("Gather", []string{"table", InputIDs}, []string{"rows"}, onnxpb.AttrInt("axis", 0))
	// The weighted sum over len is a batched [1,len]x[len,bag] product,
	// which avoids materialising a second [batch,len,bag] tensor.
	g.Node("Unsqueeze", []string{InputWeights, "axis1"}, []string{"w3"})
	g.Node("MatMul", []string{"w3", "rows"}, []string{"bag3"})
	g.Node("Squeeze", []string{"bag3", "axis1"}, []string{"bag"})
	g.Node("MatMul", []string{"bag", "projection"}, []string{"z"})
	g.Node("Mul", []string{"z", "z"}, []string{"z2"})
	g.Node("ReduceSum", []string{"z2", "axis1"}, []string{"sumsq"}, onnxpb.AttrInt("keepdims", 1))
	g.Node("Add", []string{"sumsq", "epsilon"}, []string{"sumsq_eps"})
	g.Node("Sqrt", []string{"sumsq_eps"}, []string{"norm"})
	g.Node("Div", []string{"z", "norm"}, []string{OutputName})

	return &onnxpb.Model{
		ProducerName:    "recsys",
		ProducerVersion: KindHashedBag,
		Doc:             "hashed words, bigrams and character n-grams -> embedding bag -> projection -> L2 norm",
		Graph:           g,
		Metadata: map[string]string{
			MetaKind:       KindHashedBag,
			MetaFeaturizer: string(fc),
			MetaDim:        strconv.Itoa(cfg.Dim),
			MetaBagDim:     strconv.Itoa(cfg.BagDim),
		},
	}, nil
}

// randomParams draws the initial weights from a seeded generator, so the
// same config always yields the same model bytes. Table entries are
// N(0, 1/BagDim) and projection entries N(0, 1/Dim); the scale only matters
// relative to normEpsilon, and these keep real vectors far above it.
func randomParams(cfg ModelConfig) (table, proj []float32) {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6a09e667f3bcc909))
	table = make([]float32, cfg.Featurizer.Buckets*cfg.BagDim)
	ts := 1 / math.Sqrt(float64(cfg.BagDim))
	// Row 0 stays zero: it is the padding id.
	for i := cfg.BagDim; i < len(table); i++ {
		table[i] = float32(rng.NormFloat64() * ts)
	}
	proj = make([]float32, cfg.BagDim*cfg.Dim)
	ps := 1 / math.Sqrt(float64(cfg.Dim))
	for i := range proj {
		proj[i] = float32(rng.NormFloat64() * ps)
	}
	return table, proj
}

// modelInfo is what the Encoder needs from a model's metadata.
type modelInfo struct {
	featurizer FeaturizerConfig
	dim        int
}

func parseModelInfo(meta map[string]string) (modelInfo, error) {
	if kind, ok := meta[MetaKind]; ok && kind != KindHashedBag {
		return modelInfo{}, fmt.Errorf("model kind %q is not %q", kind, KindHashedBag)
	}
	raw, ok := meta[MetaFeaturizer]
	if !ok {
		return modelInfo{}, fmt.Errorf("model has no %q metadata: it was not built as a recsys embedding model, so its tokenisation is unknown", MetaFeaturizer)
	}
	var info modelInfo
	dec := json.NewDecoder(strings.NewReader(raw))
	// A field this build does not know would change tokenisation in a way
	// it cannot reproduce: refuse rather than serve skewed embeddings.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info.featurizer); err != nil {
		return modelInfo{}, fmt.Errorf("model metadata %q: %w", MetaFeaturizer, err)
	}
	if err := info.featurizer.Validate(); err != nil {
		return modelInfo{}, fmt.Errorf("model metadata %q: %w", MetaFeaturizer, err)
	}
	dim, err := strconv.Atoi(meta[MetaDim])
	if err != nil || dim <= 0 {
		return modelInfo{}, fmt.Errorf("model metadata %q: want a positive integer, got %q", MetaDim, meta[MetaDim])
	}
	info.dim = dim
	return info, nil
}
