// Package index owns nearest-neighbour search over item embeddings and its
// snapshot files. Three backends sit behind Index, chosen by index.backend:
//
//   - hnsw (HNSW, the default): the project's own hierarchical navigable
//     small world graph: the paper's algorithm with heuristic neighbour
//     selection, flat int32 link arrays, one contiguous []float32 of
//     vectors, a pooled epoch-stamped visited set, AVX2 dot products with
//     software prefetch, a parallel build whose readers take no locks and
//     whose walk runs on int8 codes (the links are still chosen on exact
//     distances), and filtered search that evaluates the filter during the
//     walk or, when the filter's estimated selectivity makes that costlier,
//     scans the passing items exactly. With index.quantize: int8 searches
//     walk on int8 codes too (a scale per dimension, AVX-512 VNNI or AVX2
//     kernels) and re-score the best candidates on float32;
//   - exact (Exact): brute force, the reference recall is measured against;
//   - coder-hnsw (CoderHNSW): github.com/coder/hnsw v0.6.1 as published,
//     kept so the comparison stays reproducible.
//
// Build and Load dispatch on the backend (Load reads it from the file's
// magic). Snapshots share one framing: header, typed sections, CRC32C per
// section, written through a temporary file and a rename, and verified
// completely on load. Load maps the file (Linux; elsewhere it reads it)
// and the hnsw and exact backends use their sections in place, so a load
// costs one checksum pass and no copy; their Close releases the mapping.
//
// Beside the vectors, Lexical is the lexical index: BM25F ("combined
// fields": per-field weighted term frequencies and lengths, one
// saturation) over an item's title, brand, category, tags and
// description, in a snapshot of the same framing. Analysis uses bleve's
// maintained components (Unicode segmentation, ASCII folding, possessives,
// lower case, Snowball stopwords, Porter stemming) plus words joined by
// "-" or "/" kept whole, so "wh-1000xm5" matches as typed. The postings are
// the project's own: bleve's index was measured against them (recsys bench
// lexical) and was slower to build and query, larger on disk, and its
// BM25 (square-rooted term frequencies, squared idf, a coordination
// factor) does not reproduce the standard scores; see the README.
//
// Item ids are dense int32 positions (0..Len()-1) in the order the vectors
// were given; mapping them to catalog ids is the bundle's job. Indexes are
// read-only after construction, so any number of goroutines may search one
// concurrently.
//
// The live catalog's changes between rebuilds have two structures of their
// own: Growing, an append-only HNSW (the same graph code) that one writer
// extends while any number of goroutines search it without locks, and
// Lexical.Delta, a small lexical index scored with its base's statistics
// so its scores compare with the base's.
package index
