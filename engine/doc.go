// Package engine owns the online two-stage pipeline over one immutable
// bundle generation: embed the query (or build a user vector), retrieve
// candidates from the index with filters pushed into the search, enrich them
// with features, score them with the ranker, apply business rules and
// report what was served.
//
// A request loads the live Generation once and uses it throughout, so the
// index, embedding model, feature version, ranker and rules of one response
// always come from the same bundle. Generations are reference counted: a
// swapped-out generation closes its ONNX sessions only after the requests
// holding it have finished.
package engine
