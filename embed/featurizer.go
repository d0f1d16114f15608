package embed

import (
	"cmp"
	"errors"
	"slices"
	"sync"
)

// FeaturizerConfig decides how text becomes hashed feature ids. A model
// stores it in its metadata; changing any field changes every id, so a
// model can only be served with the config it was built with.
type FeaturizerConfig struct {
	// Buckets is the size of the id space. Id 0 is reserved for padding,
	// so features hash into 1..Buckets-1.
	Buckets int `json:"buckets" yaml:"buckets"`
	// MinN and MaxN bound the character n-gram lengths (in runes), taken
	// over each word wrapped in "<" and ">" so prefixes and suffixes are
	// distinct features. Both zero disables character n-grams.
	MinN int `json:"min_n" yaml:"min_n"`
	MaxN int `json:"max_n" yaml:"max_n"`
	// Bigrams adds adjacent word pairs, which carry phrase meaning
	// ("new york") that unigrams lose.
	Bigrams bool `json:"bigrams" yaml:"bigrams"`
	// Seed perturbs the hash so two models can use independent id spaces.
	Seed uint64 `json:"seed" yaml:"seed"`
	// MaxWords caps the words read from one text (0 means no cap). Long
	// descriptions otherwise make a batch's padded width, and so the
	// model's memory, grow without bound.
	MaxWords int `json:"max_words" yaml:"max_words"`
	// Per-kind weights scale each feature's share of the text's embedding.
	// Zero means 1.
	WordWeight   float32 `json:"word_weight,omitempty" yaml:"word_weight"`
	BigramWeight float32 `json:"bigram_weight,omitempty" yaml:"bigram_weight"`
	CharWeight   float32 `json:"char_weight,omitempty" yaml:"char_weight"`
}

// Limits that keep a config within what a model file and the n-gram loop
// handle sensibly.
const (
	maxBuckets = 1 << 24
	maxGram    = 8
)

// DefaultFeaturizerConfig returns the configuration of the default model.
func DefaultFeaturizerConfig() FeaturizerConfig {
	return FeaturizerConfig{
		Buckets:  1 << 16,
		MinN:     3,
		MaxN:     5,
		Bigrams:  true,
		Seed:     0x9e3779b97f4a7c15,
		MaxWords: 256,
	}
}

// Validate reports every invalid field.
func (c FeaturizerConfig) Validate() error {
	var errs []error
	if c.Buckets < 2 || c.Buckets > maxBuckets {
		errs = append(errs, errors.New("buckets: must be between 2 and 16777216"))
	}
	switch {
	case c.MinN == 0 && c.MaxN == 0:
	case c.MinN < 1:
		errs = append(errs, errors.New("min_n: must be >= 1 (or min_n and max_n both 0)"))
	case c.MaxN < c.MinN:
		errs = append(errs, errors.New("max_n: must be >= min_n"))
	case c.MaxN > maxGram:
		errs = append(errs, errors.New("max_n: must be <= 8"))
	}
	if c.MaxWords < 0 {
		errs = append(errs, errors.New("max_words: must be >= 0"))
	}
	if c.WordWeight < 0 {
		errs = append(errs, errors.New("word_weight: must be >= 0"))
	}
	if c.BigramWeight < 0 {
		errs = append(errs, errors.New("bigram_weight: must be >= 0"))
	}
	if c.CharWeight < 0 {
		errs = append(errs, errors.New("char_weight: must be >= 0"))
	}
	return errors.Join(errs...)
}

// Feature kinds are hashed into the id so that the word "the" and the
// character trigram "the" are different features.
const (
	kindWord   = 1
	kindBigram = 2
	kindChar   = 3
)

// Featurizer turns text into hashed feature ids and weights. It is
// immutable and safe for concurrent use.
type Featurizer struct {
	cfg                  FeaturizerConfig
	seed                 uint64
	wWord, wBigram, wChr float32
	scratch              sync.Pool
}

// NewFeaturizer returns a featurizer for a valid config.
func NewFeaturizer(cfg FeaturizerConfig) (*Featurizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	or1 := func(w float32) float32 {
		if w == 0 {
			return 1
		}
		return w
	}
	f := &Featurizer{
		cfg:     cfg,
		seed:    mix64(cfg.Seed),
		wWord:   or1(cfg.WordWeight),
		wBigram: or1(cfg.BigramWeight),
		wChr:    or1(cfg.CharWeight),
	}
	f.scratch.New = func() any { return new(scratch) }
	return f, nil
}

// Config returns the featurizer's configuration.
func (f *Featurizer) Config() FeaturizerConfig { return f.cfg }

// scratch is per-call working memory, pooled because featurisation runs
// for every query and every item.
type scratch struct {
	word, prev, wrapped []byte
	offsets             []int
	feats               []feature
}

type feature struct {
	id int64
	w  float32
}

// Featurize returns the features of text: distinct ids in increasing order
// and their weights, which sum to 1. A text without letters or digits has
// no features.
func (f *Featurizer) Featurize(text string) (ids []int64, weights []float32) {
	return f.AppendFeatures(nil, nil, text)
}

// AppendFeatures is Featurize appending to caller-owned slices, so batch
// encoders can reuse one buffer across texts.
func (f *Featurizer) AppendFeatures(ids []int64, weights []float32, text string) ([]int64, []float32) {
	s := f.scratch.Get().(*scratch)
	defer f.scratch.Put(s)
	s.feats = s.feats[:0]
	s.prev = s.prev[:0]

	words := 0
	for pos := 0; ; {
		var w []byte
		w, pos = nextWord(text, pos, s.word)
		if len(w) == 0 {
			break
		}
		s.word = w
		f.addWord(s, w)
		s.prev = append(s.prev[:0], w...)
		words++
		if f.cfg.MaxWords > 0 && words >= f.cfg.MaxWords {
			break
		}
	}
	if len(s.feats) == 0 {
		return ids, weights
	}

	// Repeated features are merged so the model sees each id once with its
	// total weight: shorter rows, and the same embedding as a repeated sum.
	slices.SortFunc(s.feats, func(a, b feature) int { return cmp.Compare(a.id, b.id) })
	var total float32
	for _, ft := range s.feats {
		total += ft.w
	}
	if total == 0 {
		// Only reachable with every present kind weighted 0; an empty
		// feature set then beats dividing by zero.
		return ids, weights
	}
	prev := int64(-1)
	for _, ft := range s.feats {
		if ft.id == prev {
			weights[len(weights)-1] += ft.w / total
			continue
		}
		ids = append(ids, ft.id)
		weights = append(weights, ft.w/total)
		prev = ft.id
	}
	return ids, weights
}

func (f *Featurizer) addWord(s *scratch, w []byte) {
	s.feats = append(s.feats, feature{f.bucket(f.hash(kindWord, w, nil)), f.wWord})
	if f.cfg.Bigrams && len(s.prev) > 0 {
		s.feats = append(s.feats, feature{f.bucket(f.hash(kindBigram, s.prev, w)), f.wBigram})
	}
	if f.cfg.MinN == 0 {
		return
	}
	s.wrapped = append(append(append(s.wrapped[:0], '<'), w...), '>')
	s.offsets = s.offsets[:0]
	for i := range string(s.wrapped) {
		s.offsets = append(s.offsets, i)
	}
	runes := len(s.offsets)
	s.offsets = append(s.offsets, len(s.wrapped))
	for n := f.cfg.MinN; n <= f.cfg.MaxN && n <= runes; n++ {
		for i := 0; i+n <= runes; i++ {
			gram := s.wrapped[s.offsets[i]:s.offsets[i+n]]
			s.feats = append(s.feats, feature{f.bucket(f.hash(kindChar, gram, nil)), f.wChr})
		}
	}
}

// FNV-1a 64 constants.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hash is FNV-1a over kind, a and (when present) a separator and b, started
// from a seeded offset. FNV-1a is tiny, allocation-free and stable across
// releases, which matters more here than raw speed: ids are baked into
// models.
func (f *Featurizer) hash(kind byte, a, b []byte) uint64 {
	h := uint64(fnvOffset) ^ f.seed
	h = (h ^ uint64(kind)) * fnvPrime
	for _, c := range a {
		h = (h ^ uint64(c)) * fnvPrime
	}
	if b != nil {
		// A byte that cannot occur in a normalised word keeps ("ab","c")
		// and ("a","bc") apart.
		h = (h ^ ' ') * fnvPrime
		for _, c := range b {
			h = (h ^ uint64(c)) * fnvPrime
		}
	}
	return h
}

// bucket maps a hash to 1..Buckets-1. FNV's low bits are weak for short
// inputs, so the hash is avalanched before the modulo.
func (f *Featurizer) bucket(h uint64) int64 {
	return 1 + int64(mix64(h)%uint64(f.cfg.Buckets-1))
}

// mix64 is the SplitMix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
