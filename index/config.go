package index

import (
	"errors"
	"fmt"
)

// Backend names.
const (
	BackendExact = "exact"
	BackendHNSW  = "hnsw"
	// BackendCoderHNSW is github.com/coder/hnsw as published (v0.6.1). It
	// returns wrong neighbours; it stays so the comparison is reproducible
	// and a fixed release can be adopted by changing index.backend.
	BackendCoderHNSW = "coder-hnsw"
)

var backends = []string{BackendExact, BackendHNSW, BackendCoderHNSW}

// Config selects the index implementation and its parameters. The graph
// parameters are used by hnsw and coder-hnsw; exact ignores them.
type Config struct {
	// Backend is the search structure: "hnsw" (approximate, the default),
	// "exact" (brute force; exact top-k, linear in the catalog) or
	// "coder-hnsw" (the published library, kept for comparison).
	Backend string `yaml:"backend"`
	// M is the number of links per node above layer 0 (layer 0 keeps 2*M).
	// More links raise recall and memory.
	M int `yaml:"m"`
	// EfConstruction is the candidate list size while building; it buys
	// graph quality with build time.
	EfConstruction int `yaml:"ef_construction"`
	// EfSearch is the candidate list size while searching (at least k is
	// used); it buys recall with query time.
	EfSearch int `yaml:"ef_search"`
	// ExactBelow is the estimated filter selectivity under which a
	// filtered query scans the passing items exactly instead of walking the
	// graph, where too few neighbours would pass to find k quickly.
	ExactBelow float64 `yaml:"exact_below"`
	// Quantize is how the graph walk scores vectors: "" or "none" on the
	// float32 vectors, "int8" on int8 codes (a scale per dimension, a
	// quarter of the float32 memory) with the walk's best candidates
	// re-scored on float32, so the hits and their scores stay exact. The
	// codes are built with the graph and stored in its snapshot, so it is
	// a build setting; hnsw only.
	Quantize string `yaml:"quantize"`
	// Rescore is how many of the int8 walk's best candidates are re-scored
	// on float32, as a multiple of k; 0 means the default, 2. More costs
	// float32 reads for recall lost only to the codes' error, which 2k
	// already recovered in every measurement. It is stored in the
	// snapshot; unused without int8.
	Rescore int `yaml:"rescore"`
}

// maxRescore bounds Config.Rescore: past a few times k re-scoring costs
// float32 reads for nothing.
const maxRescore = 64

// DefaultConfig is the configuration config.yaml spells out.
func DefaultConfig() Config {
	return Config{Backend: BackendHNSW, M: 16, EfConstruction: 100, EfSearch: 128, ExactBelow: 0.02, Quantize: QuantizeNone, Rescore: defaultRescore}
}

// Validate reports a bad field, named by its key.
func (c Config) Validate() error {
	var errs []error
	known := false
	for _, b := range backends {
		known = known || c.Backend == b
	}
	switch {
	case c.Backend == "":
		errs = append(errs, fmt.Errorf("backend: must be set (one of %q)", backends))
	case !known:
		errs = append(errs, fmt.Errorf("backend: unknown backend %q (want one of %q)", c.Backend, backends))
	}
	knownQ := false
	for _, q := range quantizers {
		knownQ = knownQ || c.Quantize == q
	}
	switch {
	case !knownQ:
		errs = append(errs, fmt.Errorf("quantize: unknown scheme %q (want %q or %q)", c.Quantize, QuantizeNone, QuantizeInt8))
	case c.Quantize == QuantizeInt8 && c.Backend != BackendHNSW && known:
		errs = append(errs, fmt.Errorf("quantize: int8 needs backend %q, not %q", BackendHNSW, c.Backend))
	}
	if c.Rescore < 0 || c.Rescore > maxRescore {
		errs = append(errs, fmt.Errorf("rescore: must be in 0..%d (0 is the default, %d), got %d", maxRescore, defaultRescore, c.Rescore))
	}
	if c.Backend == BackendExact {
		// The graph parameters are unused, so an exact-only config need
		// not spell them out.
		return errors.Join(errs...)
	}
	if c.M < 2 || c.M > 128 {
		errs = append(errs, fmt.Errorf("m: must be in 2..128, got %d", c.M))
	}
	if c.EfConstruction < c.M || c.EfConstruction > 4096 {
		errs = append(errs, fmt.Errorf("ef_construction: must be in m..4096, got %d", c.EfConstruction))
	}
	if c.EfSearch < 1 || c.EfSearch > 4096 {
		errs = append(errs, fmt.Errorf("ef_search: must be in 1..4096, got %d", c.EfSearch))
	}
	if !(c.ExactBelow >= 0 && c.ExactBelow <= 1) {
		errs = append(errs, fmt.Errorf("exact_below: must be in 0..1, got %v", c.ExactBelow))
	}
	return errors.Join(errs...)
}
