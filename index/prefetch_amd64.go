package index

import "unsafe"

// prefetchVec asks the CPU to start loading n bytes at p into cache.
// A graph walk scores neighbours scattered over the whole vector array;
// issuing every neighbour's loads before scoring the first overlaps their
// memory latency, which otherwise dominates the dot products.
//
//go:noescape
func prefetchVec(p unsafe.Pointer, n uintptr)
