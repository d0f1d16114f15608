package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func encodeIndex(t testing.TB, ix Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := ix.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// TestBackends is the contract every backend keeps: it builds, answers
// with valid hits, and its snapshot loads back into an index answering
// the same.
func TestBackends(t *testing.T) {
	const dim = 16
	vecs, err := GenVectors(DistLowRank, 600, dim, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := GenVectors(DistLowRank, 10, dim, 3, 1)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Backend = backend
			ix, err := Build(context.Background(), cfg, dim, vecs)
			if err != nil {
				t.Fatal(err)
			}
			if ix.Len() != 600 || ix.Dim() != dim || !slices.Equal(ix.Vector(7), vecs[7*dim:8*dim]) {
				t.Fatalf("built index: len %d dim %d", ix.Len(), ix.Dim())
			}
			path := filepath.Join(t.TempDir(), "index.snap")
			if err := ix.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for qi := range 10 {
				q := qs[qi*dim : (qi+1)*dim]
				for _, f := range []Filter{nil, passEvery(2)} {
					a, b := ix.Search(q, 10, f), got.Search(q, 10, f)
					checkHits(t, a, f)
					if !slices.Equal(a, b) {
						t.Fatalf("query %d: loaded index answers %v, built %v", qi, b, a)
					}
				}
			}
		})
	}
	t.Run("unknown backend", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Backend = "faiss"
		if _, err := Build(context.Background(), cfg, dim, vecs); err == nil {
			t.Fatal("built an unknown backend")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

func smallHNSW(t testing.TB, n int) *HNSW {
	t.Helper()
	v := randomUnit(9, n, 8)
	cfg := DefaultConfig()
	cfg.M = 4
	cfg.EfConstruction = 16
	h, err := NewHNSW(context.Background(), cfg, 8, v)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// resection recomputes the checksum of the section starting at off, so an
// edit reaches the graph checks behind the checksum.
func resection(b []byte, off int) {
	size := int(binary.LittleEndian.Uint64(b[off+8:]))
	end := off + sectionHdrSize + size
	binary.LittleEndian.PutUint32(b[end:], crc32c(b[off:end]))
}

// sectionOffset finds the section of kind in a snapshot.
func sectionOffset(t testing.TB, b []byte, kind uint32) int {
	off := headerSize
	for off < len(b) {
		if binary.LittleEndian.Uint32(b[off:]) == kind {
			return off
		}
		off += sectionHdrSize + int(binary.LittleEndian.Uint64(b[off+8:])) + crcSize
	}
	t.Fatalf("no section %d", kind)
	return 0
}

func TestDecodeHNSW(t *testing.T) {
	h := smallHNSW(t, 200)
	good := encodeIndex(t, h)
	edit := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		return b
	}
	links0 := sectionOffset(t, good, sectionLinks0) + sectionHdrSize
	params := sectionOffset(t, good, sectionParams)
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{name: "empty", data: nil, wantErr: ErrEmptySnapshot},
		{name: "truncated header", data: good[:20], wantErr: ErrTruncated},
		{name: "truncated in the links", data: good[:links0+100], wantErr: ErrTruncated},
		{name: "truncated by one byte", data: good[:len(good)-1], wantErr: ErrTruncated},
		{name: "exact magic", data: edit(func(b []byte) { copy(b, magicExact); reheader(b) }), wantErr: ErrBadMagic},
		{name: "bit flip in vectors", data: edit(func(b []byte) { b[sectionOffset(t, b, sectionVectors)+sectionHdrSize+5] ^= 0x10 }), wantErr: ErrChecksum},
		{name: "bit flip in links", data: edit(func(b []byte) { b[links0+40] ^= 1 }), wantErr: ErrChecksum},
		{name: "bit flip in header", data: edit(func(b []byte) { b[13] ^= 1 }), wantErr: ErrChecksum},
		{name: "link out of range", data: edit(func(b []byte) {
			binary.LittleEndian.PutUint32(b[links0+4:], 1<<20)
			resection(b, links0-sectionHdrSize)
		}), wantErr: ErrCorrupt},
		{name: "link count above cap", data: edit(func(b []byte) {
			binary.LittleEndian.PutUint32(b[links0:], 99)
			resection(b, links0-sectionHdrSize)
		}), wantErr: ErrCorrupt},
		{name: "entry point out of range", data: edit(func(b []byte) {
			binary.LittleEndian.PutUint32(b[params+sectionHdrSize+12:], 5000)
			resection(b, params)
		}), wantErr: ErrCorrupt},
		{name: "bad parameters", data: edit(func(b []byte) {
			binary.LittleEndian.PutUint64(b[params+sectionHdrSize+16:], math.Float64bits(math.NaN()))
			resection(b, params)
		}), wantErr: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeHNSW(tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeHNSW = %v, %v; want error %v", got, err, tt.wantErr)
			}
			if _, err := Decode(tt.data); err == nil {
				t.Fatal("Decode accepted it")
			}
		})
	}
	t.Run("every truncation is refused", func(t *testing.T) {
		for n := 0; n < len(good); n += 1 + n/50 {
			if _, err := DecodeHNSW(good[:n]); err == nil {
				t.Fatalf("truncated to %d of %d bytes: accepted", n, len(good))
			}
		}
	})
	t.Run("round trip", func(t *testing.T) {
		got, err := DecodeHNSW(good)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encodeIndex(t, got), good) {
			t.Fatal("re-encoding differs")
		}
	})
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// FuzzDecode: arbitrary bytes never panic whatever backend the magic names,
// and whatever decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	// Seeds stay small: the fuzzer minimises every interesting input, and
	// that is quadratic in its length.
	f.Add(encodeIndex(f, smallHNSW(f, 6)))
	f.Add(encodeIndex(f, smallQuantHNSW(f, 6, 3)))
	f.Add(encodeIndex(f, mustExact(f, 4, randomUnit(1, 3, 4))))
	f.Add([]byte(magicHNSW))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := Decode(data)
		if err != nil {
			if ix != nil {
				t.Fatal("error with a non-nil index")
			}
			return
		}
		if !bytes.Equal(encodeIndex(t, ix), data) {
			t.Fatal("decoded snapshot re-encodes differently")
		}
		ix.Search(ix.Vector(0), 3, nil)
	})
}
