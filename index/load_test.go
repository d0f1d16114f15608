package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

// smallQuantHNSW is smallHNSW with int8 codes.
func smallQuantHNSW(t testing.TB, n, dim int) *HNSW {
	t.Helper()
	cfg := DefaultConfig()
	cfg.M, cfg.EfConstruction, cfg.Quantize = 4, 16, QuantizeInt8
	h, err := NewHNSW(context.Background(), cfg, dim, randomUnit(9, n, dim))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// within reports whether the first byte of s lies inside m.
func within[T any](s []T, m []byte) bool {
	if len(s) == 0 || len(m) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(&s[0]))
	lo := uintptr(unsafe.Pointer(&m[0]))
	return p >= lo && p < lo+uintptr(len(m))
}

func sameAnswers(t *testing.T, a, b Index, queries []float32) {
	t.Helper()
	dim := a.Dim()
	for qi := range len(queries) / dim {
		q := queries[qi*dim : (qi+1)*dim]
		for _, f := range []Filter{nil, passEvery(3)} {
			if x, y := a.Search(q, 10, f), b.Search(q, 10, f); !slices.Equal(x, y) {
				t.Fatalf("query %d: %v, want %v", qi, y, x)
			}
		}
	}
}

// TestLoad_Mapped: a loaded index reads its vectors, links and codes in
// the mapped file, answers like the index written, keeps working after
// the file is gone, and releases the mapping on Close.
func TestLoad_Mapped(t *testing.T) {
	tests := []struct {
		name string
		ix   Index
	}{
		{"exact", mustExact(t, 8, randomUnit(4, 301, 8))},
		{"hnsw", smallHNSW(t, 301)},
		{"hnsw int8", smallQuantHNSW(t, 301, 24)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.snap")
			if err := tt.ix.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			queries := randomUnit(5, 10, tt.ix.Dim())
			sameAnswers(t, tt.ix, got, queries)

			var m *mapping
			var aliased []bool
			switch ix := got.(type) {
			case *Exact:
				m = ix.mapped
				if m != nil {
					aliased = append(aliased, within(ix.vecs, m.data))
				}
			case *HNSW:
				m = ix.mapped
				if m != nil {
					aliased = append(aliased, within(ix.vecs, m.data), within(ix.links0, m.data),
						within(ix.upper, m.data), within(ix.levels, m.data))
					if ix.codes != nil {
						aliased = append(aliased, within(ix.codes, m.data))
						if uintptr(unsafe.Pointer(&ix.codes[0]))%codesAlign != 0 {
							t.Error("codes are not 64-byte aligned in the mapping")
						}
					}
				}
			}
			if runtime.GOOS == "linux" && m == nil {
				t.Fatal("not mapped")
			}
			if slices.Contains(aliased, false) {
				t.Fatalf("a section was copied, not used in place: %v", aliased)
			}
			c := got.(io.Closer)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// TestLoad_OldSnapshots: files written before the layout change (levels
// before the links, so with 203 nodes the links are misaligned) still
// load, through the copying fallback for those sections.
func TestLoad_OldSnapshots(t *testing.T) {
	for _, name := range []string{"hnsw-v1.snap", "exact-v1.snap"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.(io.Closer).Close()
			queries := randomUnit(6, 10, decoded.Dim())
			sameAnswers(t, decoded, loaded, queries)
			if h, ok := loaded.(*HNSW); ok && h.mapped != nil {
				if within(h.links0, h.mapped.data) {
					t.Error("misaligned layer-0 links were used in place")
				}
				if !within(h.vecs, h.mapped.data) {
					t.Error("aligned vectors were copied")
				}
			}
			// Rewritten, the file takes the new layout and loads the same.
			again, err := Decode(encodeIndex(t, decoded))
			if err != nil {
				t.Fatal(err)
			}
			sameAnswers(t, decoded, again, queries)
		})
	}
}

// TestSnapshot_Alignment: every 4-byte payload a writer produces is
// 4-byte aligned in the file and the codes are 64-byte aligned, whatever
// the node count and dimension.
func TestSnapshot_Alignment(t *testing.T) {
	for _, n := range []int{5, 203} {
		for _, dim := range []int{3, 16, 33} {
			for _, ix := range []Index{smallQuantHNSW(t, n, dim), mustExact(t, dim, randomUnit(1, n, dim))} {
				b := encodeIndex(t, ix)
				off := headerSize
				for off < len(b) {
					kind := uint32(b[off]) | uint32(b[off+1])<<8
					size := int(uint64(b[off+8]) | uint64(b[off+9])<<8 | uint64(b[off+10])<<16 | uint64(b[off+11])<<24)
					payload := off + sectionHdrSize
					if kind != sectionLevels && payload%4 != 0 {
						t.Errorf("n=%d dim=%d: %s payload at offset %d", n, dim, sectionName(kind), payload)
					}
					if kind == sectionCodes && payload%codesAlign != 0 {
						t.Errorf("n=%d dim=%d: codes at offset %d", n, dim, payload)
					}
					off = payload + size + crcSize
				}
			}
		}
	}
}

// TestLoad_Damaged: the mapped load verifies every checksum as Decode
// does, so a flipped byte anywhere in a section is refused.
func TestLoad_Damaged(t *testing.T) {
	h := smallQuantHNSW(t, 150, 16)
	good := encodeIndex(t, h)
	dir := t.TempDir()
	for _, kind := range []uint32{sectionParams, sectionVectors, sectionLinks0, sectionUpper, sectionQuant, sectionCodes, sectionLevels} {
		t.Run(sectionName(kind), func(t *testing.T) {
			b := slices.Clone(good)
			b[sectionOffset(t, b, kind)+sectionHdrSize+1] ^= 0x20
			path := filepath.Join(dir, "damaged.snap")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if ix, err := Load(path); !errors.Is(err, ErrChecksum) {
				t.Fatalf("Load = %v, %v; want ErrChecksum", ix, err)
			}
			if ix, err := LoadHNSW(path); !errors.Is(err, ErrChecksum) {
				t.Fatalf("LoadHNSW = %v, %v; want ErrChecksum", ix, err)
			}
		})
	}
	t.Run("exact", func(t *testing.T) {
		b := encode(t, mustExact(t, 16, gridUnit(3, 10)))
		b[headerSize+sectionHdrSize+7] ^= 1
		path := filepath.Join(dir, "exact.snap")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadExact(path); !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
}

// TestDecode_NoAlias: Decode copies, so the caller may reuse its buffer.
func TestDecode_NoAlias(t *testing.T) {
	for _, ix := range []Index{smallQuantHNSW(t, 64, 16), mustExact(t, 16, randomUnit(2, 64, 16))} {
		b := encodeIndex(t, ix)
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := got.Search(ix.Vector(3), 5, nil)
		clear(b)
		if again := got.Search(ix.Vector(3), 5, nil); !slices.Equal(again, want) {
			t.Fatal("the decoded index changed with its input buffer")
		}
		if !bytes.Equal(encodeIndex(t, got), encodeIndex(t, ix)) {
			t.Fatal("re-encoding differs")
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	h := smallQuantHNSW(b, 20_000, 64)
	path := filepath.Join(b.TempDir(), "index.snap")
	if err := h.WriteFile(path); err != nil {
		b.Fatal(err)
	}
	b.Run("mapped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ix, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			ix.(io.Closer).Close()
		}
	})
	b.Run("read and decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
