package bundle

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// The files of a bundle, besides the manifest. The builder writes them and
// the engine reads them; this package is the one place that names them.
const (
	ItemsFile    = "items.jsonl"  // the validated catalog, in item-number order
	EmbedFile    = "embed.onnx"   // the embedding model
	IndexFile    = "index.snap"   // the vector index snapshot
	LexicalFile  = "lexical.snap" // the lexical index snapshot
	RankerFile   = "ranker.onnx"  // the ranking model
	FeaturesFile = "features.bin" // item feature rows, see WriteFeatures
	DictFile     = "dict.json"    // category and brand ids behind the id features
	RulesFile    = "rules.yaml"   // the rules the bundle was built with (a rules file's YAML)
	// The recommendation sources trained from the event log.
	NeighboursFile   = "cooc.bin"    // item-to-item co-engagement neighbours (index/cf)
	FactorsFile      = "als.bin"     // matrix-factorisation item factors (index/cf)
	FactorsIndexFile = "als.snap"    // HNSW over the factors, for the inner-product search
	PopularFile      = "popular.bin" // per item the decayed, then the all-time use count, float32 (WriteFloats)
)

// WriteFloats writes one little-endian float32 per value, fsynced, at
// path.
func WriteFloats(path string, v []float32) error { return WriteFeatures(path, [][]float32{v}) }

// ReadFloats reads a file WriteFloats wrote, which must hold n values.
func ReadFloats(path string, n int) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) != 4*n {
		return nil, fmt.Errorf("read %s: %d bytes, want %d values", filepath.Base(path), len(b), n)
	}
	return floats(b), nil
}

// floats decodes little-endian float32s.
func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// WriteItems writes the catalog as JSON Lines, fsynced, at path.
func WriteItems(path string, items []catalog.Item) error {
	return atomicfile.Write(path, func(w io.Writer) error { return catalog.WriteJSONL(w, items) })
}

// WriteFeatures writes item feature rows as little-endian float32, row
// after row, fsynced, at path. Every row must have the same length.
func WriteFeatures(path string, rows [][]float32) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		var buf [4]byte
		for _, r := range rows {
			for _, v := range r {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
				if _, err := w.Write(buf[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ReadFeatures reads the features file of the bundle in dir as one
// items x len(m.ItemFeatureNames) row-major array, checking its size
// against the manifest.
func ReadFeatures(dir string, m *Manifest) ([]float32, error) {
	b, err := os.ReadFile(filepath.Join(dir, FeaturesFile))
	if err != nil {
		return nil, fmt.Errorf("read features: %w", err)
	}
	f := len(m.ItemFeatureNames)
	if len(b) != 4*f*m.Items {
		return nil, fmt.Errorf("read features: %d bytes, want %d items x %d features", len(b), m.Items, f)
	}
	return floats(b), nil
}

// ReadFeatureRows is ReadFeatures as one slice per item (sharing one
// backing array).
func ReadFeatureRows(dir string, m *Manifest) ([][]float32, error) {
	flat, err := ReadFeatures(dir, m)
	if err != nil {
		return nil, err
	}
	f := len(m.ItemFeatureNames)
	rows := make([][]float32, m.Items)
	for i := range rows {
		rows[i] = flat[i*f : (i+1)*f : (i+1)*f]
	}
	return rows, nil
}
