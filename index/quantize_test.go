package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/viterin/vek/vek32"
)

// TestQuantizer: codes stay in -127..127, a negated vector gets negated
// codes, and the estimate of a dot product is within the rounding bound.
func TestQuantizer(t *testing.T) {
	for _, dim := range []int{1, 7, 64, 384} {
		vecs := randomUnit(uint64(dim), 500, dim)
		qz := trainQuantizer(dim, vecs)
		codes := make([]int8, len(vecs))
		qz.encode(vecs, codes)
		if slices.Contains(codes, -128) {
			t.Fatalf("dim %d: code -128", dim)
		}
		neg := slices.Clone(vecs[:dim])
		for j := range neg {
			neg[j] = -neg[j]
		}
		nc := make([]int8, dim)
		qz.encode(neg, nc)
		for j := range nc {
			if nc[j] != -codes[j] {
				t.Fatalf("dim %d: negated vector coded %d, want %d", dim, nc[j], -codes[j])
			}
		}
		qc := make([]int16, dim)
		worst := 0.0
		for qi := range 20 {
			q := randomUnit(uint64(1000+qi), 1, dim)
			f, ok := qz.prepare(q, qc)
			if !ok {
				t.Fatal("prepare refused a finite query")
			}
			// Each dimension is off by at most half a code step times |q|,
			// plus the query's own rounding.
			var bound float64
			for j := range dim {
				bound += math.Abs(float64(q[j]))*float64(qz.scale[j])/2 + float64(f)/2*maxCode
			}
			for i := range 500 {
				est := float64(f) * float64(dot8(qc, codes[i*dim:(i+1)*dim]))
				exact := float64(vek32.Dot(q, vecs[i*dim:(i+1)*dim]))
				if e := math.Abs(est - exact); e > bound {
					t.Fatalf("dim %d: estimate %v, exact %v, error above the bound %v", dim, est, exact, bound)
				} else {
					worst = max(worst, e)
				}
			}
		}
		t.Logf("dim %d: worst error %.5f", dim, worst)
	}
	t.Run("query that cannot be quantised", func(t *testing.T) {
		qz := trainQuantizer(2, []float32{1, 0})
		for _, q := range [][]float32{{float32(math.NaN()), 0}, {float32(math.Inf(1)), 0}} {
			if _, ok := qz.prepare(q, make([]int16, 2)); ok {
				t.Errorf("prepare accepted %v", q)
			}
		}
		if f, ok := qz.prepare([]float32{0, 0}, make([]int16, 2)); !ok || f != 0 {
			t.Errorf("zero query: factor %v ok %v", f, ok)
		}
	})
}

// TestHNSW_Int8 checks an int8 index against a float32 walk on the very
// same graph (the codes switched off), so only quantisation differs.
func TestHNSW_Int8(t *testing.T) {
	const n, dim, k = 4000, 32, 10
	vecs, err := GenVectors(DistClustered, n, dim, 11, 0)
	if err != nil {
		t.Fatal(err)
	}
	queries, _ := GenVectors(DistClustered, 100, dim, 11, 1)
	cfg := DefaultConfig()
	cfg.Quantize = QuantizeInt8
	h, err := buildHNSW(context.Background(), cfg, dim, vecs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Quantize() != QuantizeInt8 || len(h.codes) != n*dim {
		t.Fatalf("quantize %q, %d codes", h.Quantize(), len(h.codes))
	}
	ex := mustExact(t, dim, vecs)
	recallAt := func(ef int) float64 {
		h.SetEfSearch(ef)
		found := 0
		for qi := range 100 {
			q := queries[qi*dim : (qi+1)*dim]
			got, st := h.SearchStats(q, k, nil)
			checkHits(t, got, nil)
			// 2k re-scored: from the ef results, and when ef is smaller
			// from the best the walk pushed out of them.
			pool := defaultRescore * k
			if h.codes != nil && (st.Rescored > pool || st.Rescored < min(ef, pool) || ef >= pool && st.Rescored != pool) {
				t.Fatalf("ef %d: re-scored %d, want %d", ef, st.Rescored, pool)
			}
			for _, hit := range got {
				// Scores are the float32 ones, not the codes' estimate.
				if want := -h.dist(q, hit.ID); hit.Score != want {
					t.Fatalf("hit %d scores %v, float32 %v", hit.ID, hit.Score, want)
				}
			}
			found += overlap(got, ex.Search(q, k, nil))
		}
		return float64(found) / (100 * k)
	}
	codes := h.codes
	for _, ef := range []int{10, 16, 64} {
		h.codes = codes
		q8 := recallAt(ef)
		h.codes = nil
		f32 := recallAt(ef)
		if q8 < f32-0.01 {
			t.Errorf("ef %d: int8 recall@%d %.3f, float32 %.3f", ef, k, q8, f32)
		}
	}
	h.codes = codes

	t.Run("NaN query walks on float32", func(t *testing.T) {
		q := slices.Clone(queries[:dim])
		q[0] = float32(math.NaN())
		got, st := h.SearchStats(q, k, nil)
		if len(got) != k || st.Rescored != 0 {
			t.Fatalf("%d hits, re-scored %d", len(got), st.Rescored)
		}
	})
	t.Run("rescore setting", func(t *testing.T) {
		defer func(r int) { h.rescore = r }(h.rescore)
		h.rescore = 5
		h.SetEfSearch(64)
		if _, st := h.SearchStats(queries[:dim], k, nil); st.Rescored != 5*k {
			t.Fatalf("re-scored %d, want %d", st.Rescored, 5*k)
		}
		// Past ef, the pool takes what the walk pushed out of its results.
		h.SetEfSearch(16)
		if _, st := h.SearchStats(queries[:dim], k, nil); st.Rescored <= 16 || st.Rescored > 5*k {
			t.Fatalf("re-scored %d, want 17..%d", st.Rescored, 5*k)
		}
	})
	t.Run("filtered", func(t *testing.T) {
		h.SetEfSearch(64)
		f := passEvery(2)
		got, st := h.SearchStats(queries[:dim], k, f)
		checkHits(t, got, f)
		if st.Strategy != StrategyFilteredGraph || len(got) != k {
			t.Fatalf("strategy %v, %d hits", st.Strategy, len(got))
		}
	})
	t.Run("bytes", func(t *testing.T) {
		float := *h.exactSize()
		if got := h.Bytes() - float; got != int64(n*dim+4*dim) {
			t.Fatalf("codes and scales take %d bytes, want %d", got, n*dim+4*dim)
		}
	})
}

// exactSize is the Bytes of h without its codes, for comparison.
func (h *HNSW) exactSize() *int64 {
	b := int64(len(h.vecs))*4 + int64(len(h.links0))*4 + int64(len(h.upper))*4 +
		int64(len(h.upperOff))*4 + int64(len(h.levels))
	return &b
}

func TestDecodeHNSW_Quantiser(t *testing.T) {
	h := smallQuantHNSW(t, 120, 16)
	good := encodeIndex(t, h)
	quant := sectionOffset(t, good, sectionQuant)
	codes := sectionOffset(t, good, sectionCodes)
	qp := quant + sectionHdrSize
	edit := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		return b
	}
	put := func(off int, v uint32) func(b []byte) {
		return func(b []byte) {
			binary.LittleEndian.PutUint32(b[off:], v)
			resection(b, quant)
		}
	}
	// withoutSection drops the section at off and fixes the header count.
	withoutSection := func(off int) []byte {
		size := int(binary.LittleEndian.Uint64(good[off+8:]))
		b := slices.Concat(good[:off], good[off+sectionHdrSize+size+crcSize:])
		binary.LittleEndian.PutUint32(b[24:], binary.LittleEndian.Uint32(b[24:])-1)
		return reheader(b)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"no codes", withoutSection(codes)},
		{"no quantiser", withoutSection(quant)},
		{"unknown scheme", edit(put(qp, 2))},
		{"rescore too large", edit(put(qp+4, maxRescore+1))},
		{"padding too long", edit(put(qp+8, codesAlign))},
		{"reserved not zero", edit(put(qp+12, 1))},
		{"NaN scale", edit(put(qp+quantHdrSize, math.Float32bits(float32(math.NaN()))))},
		{"negative scale", edit(put(qp+quantHdrSize+4, math.Float32bits(-1)))},
		{"code -128", edit(func(b []byte) {
			b[codes+sectionHdrSize+3] = 0x80
			resection(b, codes)
		})},
	}
	if pad := binary.LittleEndian.Uint32(good[qp+8:]); pad > 0 {
		tests = append(tests, struct {
			name string
			data []byte
		}{"padding not zero", edit(func(b []byte) {
			size := int(binary.LittleEndian.Uint64(b[quant+8:]))
			b[qp+size-1] = 1
			resection(b, quant)
		})})
	} else {
		t.Log("this layout needs no padding; its check is not exercised")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := DecodeHNSW(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeHNSW = %v, %v; want ErrCorrupt", got, err)
			}
		})
	}
	t.Run("round trip", func(t *testing.T) {
		got, err := DecodeHNSW(good)
		if err != nil {
			t.Fatal(err)
		}
		if got.Quantize() != QuantizeInt8 || got.rescore != h.rescore || !slices.Equal(got.codes, h.codes) || !slices.Equal(got.quant.scale, h.quant.scale) {
			t.Fatal("quantiser or codes differ after a round trip")
		}
	})
}

// BenchmarkHNSW_SearchQuantize compares the float32 and int8 walks on the
// same graph at a few ef.
func BenchmarkHNSW_SearchQuantize(b *testing.B) {
	const n, dim = 20_000, 128
	vecs, err := GenVectors(DistClustered, n, dim, 11, 0)
	if err != nil {
		b.Fatal(err)
	}
	queries, _ := GenVectors(DistClustered, 100, dim, 11, 1)
	cfg := DefaultConfig()
	cfg.Quantize = QuantizeInt8
	h, err := NewHNSW(context.Background(), cfg, dim, vecs)
	if err != nil {
		b.Fatal(err)
	}
	codes := h.codes
	for _, mode := range []string{QuantizeNone, QuantizeInt8} {
		for _, ef := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/ef=%d", mode, ef), func(b *testing.B) {
				h.codes = codes
				if mode == QuantizeNone {
					h.codes = nil
				}
				h.SetEfSearch(ef)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					h.Search(queries[(i%100)*dim:(i%100+1)*dim], 10, nil)
					i++
				}
			})
		}
	}
	h.codes = codes
}

func BenchmarkNewHNSW(b *testing.B) {
	const n, dim = 10_000, 64
	vecs, err := GenVectors(DistLowRank, n, dim, 3, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{QuantizeNone, QuantizeInt8} {
		b.Run(q, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Quantize = q
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewHNSW(context.Background(), cfg, dim, vecs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
