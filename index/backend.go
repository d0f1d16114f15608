package index

import (
	"context"
	"fmt"
	"io"
)

// Index is what every backend provides: filtered top-k search over dense
// int32 ids, the stored vectors, and a snapshot file. It is declared here,
// beside Build and Load, because those must return one of several
// backends; consumers still declare the narrower interface they use.
type Index interface {
	Search(q []float32, k int, filter Filter) []Hit
	Vector(id int32) []float32
	Len() int
	Dim() int
	io.WriterTo
	WriteFile(path string) error
}

var (
	_ Index = (*Exact)(nil)
	_ Index = (*HNSW)(nil)
	_ Index = (*CoderHNSW)(nil)

	_ io.Closer = (*Exact)(nil)
	_ io.Closer = (*HNSW)(nil)
)

// Build builds the backend cfg.Backend selects over n = len(vectors)/dim
// unit vectors (kept, not copied).
func Build(ctx context.Context, cfg Config, dim int, vectors []float32) (Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	switch cfg.Backend {
	case BackendExact:
		return orNil(NewExact(dim, vectors))
	case BackendHNSW:
		return orNil(NewHNSW(ctx, cfg, dim, vectors))
	case BackendCoderHNSW:
		return orNil(NewCoderHNSW(ctx, cfg, dim, vectors))
	}
	return nil, fmt.Errorf("build index: unknown backend %q", cfg.Backend)
}

// Load reads and verifies a snapshot of any backend; the file's magic says
// which. A bundle built with one backend thus keeps loading after
// index.backend changes, until it is rebuilt.
//
// On Linux the file is memory-mapped read-only and the hnsw and exact
// backends use their vectors, codes and links in place (every section's
// checksum is still verified, which reads the file once): loading costs no
// copy, the pages are the kernel's page cache, and the file may be closed
// or renamed over. The mapping lasts until the index's Close (both have
// one; assert io.Closer) or the process's exit. Elsewhere the file is read
// into memory and used in place the same way.
func Load(path string) (Index, error) {
	return loadFile(path, func(b []byte) (Index, error) { return decode(b, true) }, adoptMapping)
}

// adoptMapping hands m to an index that aliases it.
func adoptMapping(ix Index, m *mapping) bool {
	switch ix := ix.(type) {
	case *HNSW:
		ix.mapped = m
		return true
	case *Exact:
		ix.mapped = m
		return true
	}
	return false
}

// Decode decodes a snapshot of any backend held in memory. The result does
// not alias b.
func Decode(b []byte) (Index, error) { return decode(b, false) }

func decode(b []byte, alias bool) (Index, error) {
	if len(b) == 0 {
		return nil, ErrEmptySnapshot
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: magic needs 8 bytes, have %d", ErrTruncated, len(b))
	}
	// Each case returns its own error untouched but never a typed nil
	// inside a non-nil Index.
	switch string(b[:8]) {
	case magicExact:
		return orNil(decodeExact(b, alias))
	case magicHNSW:
		return orNil(decodeHNSW(b, alias))
	case magicCoder:
		return orNil(DecodeCoderHNSW(b))
	}
	return nil, fmt.Errorf("%w: magic %q is no known backend's", ErrBadMagic, b[:8])
}

func orNil[T Index](ix T, err error) (Index, error) {
	if err != nil {
		return nil, err
	}
	return ix, nil
}
