//go:build !amd64

package index

import "unsafe"

// prefetchVec is a no-op where no prefetch kernel exists.
func prefetchVec(p unsafe.Pointer, n uintptr) {}
