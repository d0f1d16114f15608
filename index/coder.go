package index

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand"
	"slices"

	"github.com/coder/hnsw"
)

// CoderHNSW adapts github.com/coder/hnsw v0.6.1, as published, to Index.
// It is not fixed here on purpose: it exists so the comparison with the
// project's own HNSW stays reproducible, and so a corrected release can be
// adopted by changing index.backend. The library has no filter support, so
// filters are applied to an over-fetched result (k results are not
// guaranteed), and no locks, so the graph is never changed after Build.
type CoderHNSW struct {
	g  *hnsw.Graph[int32]
	ex *Exact // vectors by id, and the exact fallback's data
}

// overFetch is how many more results are asked of the graph when a filter
// will drop some.
const overFetch = 4

// NewCoderHNSW adds the vectors to a coder/hnsw graph with cfg.M and
// efConstruction as the library's EfSearch during insertion (it has no
// separate construction parameter). The library inserts serially.
func NewCoderHNSW(ctx context.Context, cfg Config, dim int, vectors []float32) (*CoderHNSW, error) {
	ex, err := NewExact(dim, vectors)
	if err != nil {
		return nil, fmt.Errorf("new coder-hnsw index: %w", err)
	}
	g := hnsw.NewGraph[int32]()
	g.M = cfg.M
	g.Ml = 1 / math.Log(float64(cfg.M))
	g.Rng = rand.New(rand.NewSource(buildSeed))
	g.EfSearch = cfg.EfConstruction
	for i := range ex.n {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("new coder-hnsw index: %w", ctx.Err())
		}
		g.Add(hnsw.MakeNode(int32(i), ex.Vector(int32(i))))
	}
	g.EfSearch = cfg.EfSearch
	return &CoderHNSW{g: g, ex: ex}, nil
}

// SetEfSearch sets the library's EfSearch. It must not race with searches.
func (c *CoderHNSW) SetEfSearch(ef int) { c.g.EfSearch = max(ef, 1) }

// Len is the number of items.
func (c *CoderHNSW) Len() int { return c.ex.n }

// Dim is the vector dimension.
func (c *CoderHNSW) Dim() int { return c.ex.dim }

// Vector returns item id's vector. It aliases the index.
func (c *CoderHNSW) Vector(id int32) []float32 { return c.ex.Vector(id) }

// Search returns what the library returns, filtered, rescored by dot
// product and ordered like the other backends.
func (c *CoderHNSW) Search(q []float32, k int, filter Filter) []Hit {
	if len(q) != c.ex.dim {
		panic(fmt.Sprintf("index: query has dim %d, index has %d", len(q), c.ex.dim))
	}
	if k <= 0 {
		return nil
	}
	ask := k
	if filter != nil {
		ask = k * overFetch
	}
	var hits []Hit
	for _, n := range c.g.Search(q, ask) {
		if filter != nil && !filter(n.Key) {
			continue
		}
		var s float32
		for i, x := range c.ex.Vector(n.Key) {
			s += x * q[i]
		}
		hits = append(hits, Hit{ID: n.Key, Score: s})
	}
	slices.SortFunc(hits, compareHits)
	return hits[:min(k, len(hits))]
}

// WriteTo writes the vectors and the library's own export.
func (c *CoderHNSW) WriteTo(w io.Writer) (int64, error) {
	var g bytes.Buffer
	if err := c.g.Export(&g); err != nil {
		return 0, fmt.Errorf("export coder-hnsw graph: %w", err)
	}
	return writeSnapshot(w, magicCoder, c.ex.dim, c.ex.n, []section{
		{sectionVectors, f32Bytes(c.ex.vecs)},
		{sectionCoder, g.Bytes()},
	})
}

// WriteFile writes a snapshot to path atomically.
func (c *CoderHNSW) WriteFile(path string) error { return writeFile(path, c) }

// LoadCoderHNSW reads and verifies a snapshot written by WriteFile. The
// library copies its graph, so the file is not kept mapped.
func LoadCoderHNSW(path string) (*CoderHNSW, error) {
	return loadFile(path, DecodeCoderHNSW, func(*CoderHNSW, *mapping) bool { return false })
}

// DecodeCoderHNSW decodes a coder-hnsw snapshot held in memory.
func DecodeCoderHNSW(b []byte) (c *CoderHNSW, err error) {
	s, err := parseSnapshot(b, magicCoder, sectionVectors, sectionCoder)
	if err != nil {
		return nil, err
	}
	vecs, err := s.vectors(false)
	if err != nil {
		return nil, err
	}
	ex, err := NewExact(s.dim, vecs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	g := hnsw.NewGraph[int32]()
	// The library's decoder trusts its input; the section's checksum
	// already passed, so a panic here means a file written by something
	// else, reported rather than crashing the loader.
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%w: coder-hnsw graph: %v", ErrCorrupt, r)
		}
	}()
	if err := g.Import(bytes.NewReader(s.sections[sectionCoder])); err != nil {
		return nil, fmt.Errorf("%w: coder-hnsw graph: %w", ErrCorrupt, err)
	}
	if g.Len() != ex.n {
		return nil, fmt.Errorf("%w: coder-hnsw graph holds %d nodes, vectors %d", ErrCorrupt, g.Len(), ex.n)
	}
	return &CoderHNSW{g: g, ex: ex}, nil
}
