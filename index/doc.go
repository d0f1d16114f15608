// Package index owns nearest-neighbour search over item embeddings: the
// exact (brute-force) index, which is the default and the reference the
// approximate ones are measured against, and their snapshot files.
//
// Item ids are dense int32 positions (0..Len()-1) in the order the vectors
// were given; mapping them to catalog ids is the bundle's job. Indexes are
// read-only after construction, so any number of goroutines may search one
// concurrently.
package index
