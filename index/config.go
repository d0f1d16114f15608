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
}

// DefaultConfig is the configuration config.yaml spells out.
func DefaultConfig() Config {
	return Config{Backend: BackendHNSW, M: 16, EfConstruction: 100, EfSearch: 128, ExactBelow: 0.02}
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
