package index

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// paramsSize is the hnsw parameters section: m, ef_construction,
// ef_search, entry point (uint32 each), exact_below (float64).
const paramsSize = 24

// WriteTo writes the graph in the snapshot format. It implements
// io.WriterTo. Vectors and links are written from memory as they are, so
// a snapshot costs no second copy of the index.
func (h *HNSW) WriteTo(w io.Writer) (int64, error) {
	var p [paramsSize]byte
	binary.LittleEndian.PutUint32(p[0:], uint32(h.m))
	binary.LittleEndian.PutUint32(p[4:], uint32(h.efConstr))
	binary.LittleEndian.PutUint32(p[8:], uint32(h.efSearch))
	binary.LittleEndian.PutUint32(p[12:], uint32(h.entry))
	binary.LittleEndian.PutUint64(p[16:], math.Float64bits(h.exactBelow))
	return writeSnapshot(w, magicHNSW, h.dim, h.n, []section{
		{sectionParams, p[:]},
		{sectionVectors, f32Bytes(h.vecs)},
		{sectionLevels, h.levels},
		{sectionLinks0, i32Bytes(h.links0)},
		{sectionUpper, i32Bytes(h.upper)},
	})
}

// WriteFile writes a snapshot to path atomically.
func (h *HNSW) WriteFile(path string) error { return writeFile(path, h) }

// LoadHNSW reads and verifies a snapshot written by (*HNSW).WriteFile.
func LoadHNSW(path string) (*HNSW, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load index snapshot: %w", err)
	}
	h, err := DecodeHNSW(b)
	if err != nil {
		return nil, fmt.Errorf("load index snapshot %s: %w", path, err)
	}
	return h, nil
}

// DecodeHNSW decodes a graph snapshot held in memory. Beyond the framing
// checks it verifies the graph itself (every link in range and at a level
// its target has, counts within the caps, the entry point on the top
// layer), because a search trusts those without bounds checks of its own.
// The result does not alias b.
func DecodeHNSW(b []byte) (*HNSW, error) {
	s, err := parseSnapshot(b, magicHNSW, sectionParams, sectionVectors, sectionLevels, sectionLinks0, sectionUpper)
	if err != nil {
		return nil, err
	}
	p := s.sections[sectionParams]
	if len(p) != paramsSize {
		return nil, fmt.Errorf("%w: parameters section is %d bytes, want %d", ErrCorrupt, len(p), paramsSize)
	}
	cfg := Config{
		Backend:        BackendHNSW,
		M:              int(binary.LittleEndian.Uint32(p[0:])),
		EfConstruction: int(binary.LittleEndian.Uint32(p[4:])),
		EfSearch:       int(binary.LittleEndian.Uint32(p[8:])),
		ExactBelow:     math.Float64frombits(binary.LittleEndian.Uint64(p[16:])),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: parameters: %w", ErrCorrupt, err)
	}
	entry := binary.LittleEndian.Uint32(p[12:])
	if entry >= uint32(s.count) {
		return nil, fmt.Errorf("%w: entry point %d outside 0..%d", ErrCorrupt, entry, s.count-1)
	}
	n := s.count
	levels := s.sections[sectionLevels]
	if len(levels) != n {
		return nil, fmt.Errorf("%w: levels section is %d bytes, want %d (one per vector)", ErrCorrupt, len(levels), n)
	}
	for i, l := range levels {
		if l >= maxLevels {
			return nil, fmt.Errorf("%w: node %d has level %d, max %d", ErrCorrupt, i, l, maxLevels-1)
		}
	}
	// Check the link sections' sizes before allocating anything large.
	m0 := 2 * cfg.M
	if want := uint64(n) * uint64(m0+1) * 4; uint64(len(s.sections[sectionLinks0])) != want {
		return nil, fmt.Errorf("%w: layer-0 links section is %d bytes, want %d", ErrCorrupt, len(s.sections[sectionLinks0]), want)
	}
	vecs, err := s.vectors()
	if err != nil {
		return nil, err
	}
	if _, err := NewExact(s.dim, vecs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	h := newHNSW(cfg, s.dim, n, vecs)
	h.levels = append([]uint8(nil), levels...)
	if err := h.layout(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if want := uint64(h.upperLen()) * 4; uint64(len(s.sections[sectionUpper])) != want {
		return nil, fmt.Errorf("%w: upper links section is %d bytes, want %d for these levels", ErrCorrupt, len(s.sections[sectionUpper]), want)
	}
	if int(h.levels[entry]) != h.maxLevel {
		return nil, fmt.Errorf("%w: entry point %d is on level %d, the top is %d", ErrCorrupt, entry, h.levels[entry], h.maxLevel)
	}
	h.entry = int32(entry)
	h.links0 = decodeI32(s.sections[sectionLinks0])
	h.upper = decodeI32(s.sections[sectionUpper])
	for id := range int32(n) {
		for lc := 0; lc <= int(h.levels[id]); lc++ {
			l := h.links(id, lc)
			if c := l[0]; c < 0 || int(c) > len(l)-1 {
				return nil, fmt.Errorf("%w: node %d level %d has %d links, max %d", ErrCorrupt, id, lc, c, len(l)-1)
			}
			for _, e := range l[1 : 1+l[0]] {
				if e < 0 || int(e) >= n || int(h.levels[e]) < lc {
					return nil, fmt.Errorf("%w: node %d level %d links to %d, not a node on that level", ErrCorrupt, id, lc, e)
				}
			}
		}
	}
	return h, nil
}
