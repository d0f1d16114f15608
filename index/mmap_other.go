//go:build !linux

package index

import "os"

// mapping is never created off Linux: snapshots are read into memory and
// the decoders alias that buffer instead.
type mapping struct{}

func mapFile(path string) ([]byte, *mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readAll(f, path)
}

func (m *mapping) close() error { return nil }

func hugeF32(v []float32)     {}
func makeCodes(n int) []int8  { return make([]int8, n) }
func makeLinks(n int) []int32 { return make([]int32, n) }
