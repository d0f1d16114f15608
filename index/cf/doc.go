// Package cf holds the collaborative-filtering candidate sources as the
// engine serves them from a bundle: item-to-item co-engagement neighbours
// (a sparse top-N table per item) and implicit-feedback matrix-factorisation
// item factors with the request-time fold-in of a user vector. Training
// lives in offline/cftrain; this package is the file formats and the
// per-request arithmetic.
//
// Items are the bundle's dense item numbers (int32, 0..items-1). A built or
// loaded Neighbours or Factors is immutable and safe for concurrent use;
// per-request memory is the caller's (Scratch) or pooled inside (FoldIn).
package cf
